"""The preprocess step: a Dask cluster, two passes over the data, Parquet shards and a manifest."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pandas as pd

from textclf.config import DaskConfig, TextclfConfig
from textclf.data.augment import augment_partition
from textclf.data.augment import check as check_augment
from textclf.data.cleaning import INSPECT_META, inspect_partition
from textclf.data.shards import SPLITS, meta_frame, read_split, shard_schema
from textclf.data.sources import check_sources, read_source, sources
from textclf.data.split_plan import materialize_partition, plan
from textclf.data.tokens import tokenize_partition
from textclf.data.versions import fingerprint
from textclf.errors import DataError
from textclf.model.backbones import resolve_backbone
from textclf.storage import join, write_json


def kube_cluster_spec(cfg: DaskConfig, name: str = "textclf-preprocess") -> dict[str, Any]:
    """The dask-kubernetes operator spec for a preprocessing cluster (built without a cluster)."""
    from dask_kubernetes.operator import make_cluster_spec

    resources = {"requests": {"cpu": str(cfg.worker_cpu), "memory": cfg.worker_memory},
                 "limits": {"cpu": str(cfg.worker_cpu), "memory": cfg.worker_memory}}
    spec = make_cluster_spec(name=name, image=cfg.image, n_workers=cfg.n_workers, resources=resources,
                             worker_command="dask worker")
    if cfg.service_account:
        for pod in (spec["spec"]["worker"]["spec"], spec["spec"]["scheduler"]["spec"]):
            pod["serviceAccountName"] = cfg.service_account
    return spec


@contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[Any]:
    """A distributed client: an existing scheduler, a KubeCluster, or a LocalCluster on this machine.

    `scheduler_address: sync` runs everything in this process (debugging, tiny data).
    """
    import dask

    if cfg.scheduler_address == "sync":
        with dask.config.set(scheduler="synchronous"):
            yield None
        return
    from distributed import Client, LocalCluster

    if cfg.scheduler_address:
        with Client(cfg.scheduler_address) as client:
            yield client
        return
    if cfg.kubernetes:
        from dask_kubernetes.operator import KubeCluster

        with KubeCluster(custom_cluster_spec=kube_cluster_spec(cfg)) as cluster, Client(cluster) as client:
            yield client
        return
    with LocalCluster(n_workers=cfg.n_workers, threads_per_worker=cfg.threads_per_worker, processes=True,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def _compute(*things, where: str):
    """dask.compute, with reader errors turned into one clear DataError naming the sources."""
    import dask

    try:
        return dask.compute(*things)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start} of a block)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        if isinstance(exc, pd.errors.ParserError) or "JSON" in str(exc) or "Expected" in str(exc):
            raise DataError(f"{where}: malformed file: {str(exc).strip()}") from None
        raise


def _length_stats(lengths: np.ndarray, max_length: int) -> dict[str, float]:
    if len(lengths) == 0:
        return {"count": 0}
    return {"count": int(len(lengths)), "mean": float(lengths.mean()), "p50": float(np.percentile(lengths, 50)),
            "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max()),
            "truncated_fraction": float((lengths >= max_length).mean())}


def preprocess(cfg: TextclfConfig, out_uri: str) -> dict[str, Any]:
    """Read -> validate -> clean -> dedupe -> encode -> split -> tokenize -> shards + manifest."""
    import dask
    import dask.dataframe as dd

    data = cfg.data
    srcs = sources(data)
    where = ", ".join(s.uri for s in srcs)
    formats = check_sources(data)  # seconds: a file the head already shows to be wrong stops here
    frames, spans, first = [], [], 0
    for src in srcs:
        frame = read_source(src, data)
        frames.append(frame)
        spans.append((src.uri, first, first + frame.npartitions))
        first += frame.npartitions
    ddf = dd.concat(frames) if len(frames) > 1 else frames[0]
    fp = fingerprint(srcs)
    tokenizer_path = resolve_backbone(cfg.model.backbone)
    if data.augment.enabled:
        check_augment(data.augment)
    with dask_client(data.dask):
        (thin,) = _compute(ddf.map_partitions(inspect_partition, data, meta=INSPECT_META), where=where)
        decided = plan(thin, data, spans)
        label2id = {name: i for i, name in decided.id2label.items()}
        rows = ddf.map_partitions(materialize_partition, dask.delayed(decided.assign), label2id, data,
                                  meta=pd.DataFrame({"row_id": pd.Series(dtype="int64"),
                                                     "text": pd.Series(dtype="string"),
                                                     "label": pd.Series(dtype="object"),
                                                     "split": pd.Series(dtype="int8")}))
        schema = shard_schema(data.multi_label)
        writes = []
        for code, name in enumerate(SPLITS):
            part = rows[rows["split"] == code]
            if name == "train" and data.augment.enabled:  # after the split: copies never reach val/test
                part = part.map_partitions(augment_partition, data.augment, meta=part._meta)
            part = part.map_partitions(
                tokenize_partition, tokenizer_path, cfg.model.max_length, meta=meta_frame(data.multi_label))
            writes.append(part.to_parquet(join(out_uri, "shards", name), schema=schema, write_index=False,
                                          compute=False, name_function=lambda i: f"part-{i:05d}.parquet"))
        _compute(*writes, where=where)
    token_lengths = {}
    for name in SPLITS:
        lengths = read_split(join(out_uri, "shards", name), ["length"])["length"].to_numpy()
        token_lengths[name] = _length_stats(lengths, cfg.model.max_length)
    manifest = {
        "shards": {name: join(out_uri, "shards", name) for name in SPLITS},
        "id2label": {str(i): n for i, n in decided.id2label.items()},
        "multi_label": data.multi_label,
        "tokenizer": tokenizer_path,
        "max_length": cfg.model.max_length,
        "fingerprint": fp,
        "token_lengths": token_lengths,
        **decided.report,
        "source_formats": formats,
        "augmented_rows": token_lengths["train"]["count"] - decided.report["splits"]["train"]["rows"],
    }
    write_json(join(out_uri, "manifest.json"), manifest)
    return manifest
