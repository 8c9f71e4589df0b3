"""The preprocess step: a Dask cluster, two passes over the data, Parquet shards and a manifest.

Pass one maps every partition to a thin frame the client plans from (`split_plan.plan`); pass two
is one task per partition that keeps, cleans, tokenizes and writes its rows (`shard_partition`).
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pandas as pd

from textclf.config import DaskConfig, TextclfConfig
from textclf.data.augment import augment_partition
from textclf.data.augment import check as check_augment
from textclf.data.cleaning import INSPECT_META, inspect_partition
from textclf.data.shards import SPLITS, read_split, shard_schema
from textclf.data.sources import check_sources, read_source, sources
from textclf.data.split_plan import materialize_partition, plan
from textclf.data.tokens import backend_json, tokenize_partition
from textclf.data.versions import fingerprint
from textclf.errors import DataError
from textclf.model.backbones import resolve_backbone
from textclf.storage import filesystem, join, write_json


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


def _tokenizer_spec(tokenizer_path: str, in_process: bool) -> Future:
    """`backend_json`, made in a short-lived process while pass one runs: transformers (and torch)
    are imported there and leave with it, never kept in this process or the workers. With the
    synchronous scheduler (tests, tiny data) everything runs here anyway: made here, once."""
    if in_process:
        made: Future = Future()
        made.set_result(backend_json(tokenizer_path))
        return made
    side = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    spec = side.submit(backend_json, tokenizer_path)
    side.shutdown(wait=False)  # the process ends once the spec is made
    return spec


SHARD_CHUNK_ROWS = 16_384  # rows tokenized and written at a time: a row group of a shard


def shard_partition(part: pd.DataFrame, number: int, assign: pd.Series, label2id: dict[str, int],
                    cfg: TextclfConfig, tokenizer: str, out_uri: str) -> None:
    """Pass two for partition `number`, start to end in one task: its kept rows cleaned and encoded,
    then per split (train augmented when asked) tokenized and appended to the split's shard a chunk
    at a time. Nothing waits in Dask's memory between steps and a chunk's tokens are on disk before
    the next chunk is made, so a worker holds one partition's texts and one chunk's tokens, whatever
    the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = materialize_partition(part, assign, label2id, cfg.data, {"number": number})
    schema = shard_schema(cfg.data.multi_label)
    for code, name in enumerate(SPLITS):
        frame = rows[rows["split"] == code]
        if name == "train" and cfg.data.augment.enabled:  # after the split: copies never reach val/test
            frame = augment_partition(frame, cfg.data.augment)
        fs, folder = filesystem(join(out_uri, "shards", name))
        fs.makedirs(folder, exist_ok=True)
        with fs.open(f"{folder}/part-{number:05d}.parquet", "wb") as f, pq.ParquetWriter(f, schema) as writer:
            for start in range(0, len(frame), SHARD_CHUNK_ROWS):
                tokens = tokenize_partition(frame.iloc[start:start + SHARD_CHUNK_ROWS], tokenizer, cfg.model.max_length)
                writer.write_table(pa.Table.from_pandas(tokens, schema=schema, preserve_index=False))


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
    spec = _tokenizer_spec(tokenizer_path, in_process=data.dask.scheduler_address == "sync")
    with dask_client(data.dask):
        (thin,) = _compute(ddf.map_partitions(inspect_partition, data, meta=INSPECT_META), where=where)
        decided = plan(thin, data, spans)
        label2id = {name: i for i, name in decided.id2label.items()}
        assign, tokenizer = dask.delayed(decided.assign), dask.delayed(spec.result())
        writes = [dask.delayed(shard_partition)(part, i, assign, label2id, cfg, tokenizer, out_uri)
                  for i, part in enumerate(ddf.to_delayed())]
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
