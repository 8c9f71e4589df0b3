"""A model's predictions for every text of a file: the rows `/predict` answers, with the model version
beside each, for `textclf predict` (one output file) and PredictFlow (one Parquet part per shard).

The model is resolved once and pinned (an alias names one version for the whole file, even if it
moves meanwhile). Every file is published whole (`storage.atomic_file`), so a part that exists is
complete; its Parquet metadata says which shard of which input, by which model version and which
task it holds, which is how a rerun or a `resume` knows a shard is done and leaves it alone.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from textclf.config import TextclfConfig
from textclf.data.texts import Shard, TextFile, open_texts, plan_shards, read_shard
from textclf.errors import DataError
from textclf.registry.resolution import resolve_model
from textclf.storage import atomic_file, exists, filesystem, join, write_json
from textclf.training.progress import progress

if TYPE_CHECKING:  # torch only where a model runs: the flow's start, join and end steps do without it
    from textclf.model.predictor import Predictor

META_KEY = b"textclf"
SUCCESS = "_SUCCESS"
OUTPUTS = {".parquet": "parquet", ".csv": "csv"}


def pin_model(uri: str, tracking_uri: str) -> dict[str, Any]:
    """What `uri` names now: its version, and the URI that keeps naming that version (`pinned`)."""
    found = resolve_model(uri, tracking_uri, download=False)
    return {"uri": uri, "pinned": found.pinned, "version": found.version, "run_id": found.run_id,
            "lineage": dict(found.lineage)}


def load_predictor(model: dict[str, Any], cfg: TextclfConfig) -> Predictor:
    from textclf.model.predictor import Predictor

    return Predictor(resolve_model(model["pinned"], cfg.registry.tracking_uri).path, batch_size=cfg.predict.batch_size)


def score(predictor: Predictor, frame: pd.DataFrame, model: dict[str, Any]) -> pd.DataFrame:
    """`row`, `label`, one `prob_<label>` per class (float32, as the model gives them) and the model."""
    probs = predictor.predict_proba(frame["text"].tolist())
    out = pd.DataFrame({"row": frame["row"].to_numpy(dtype="int64")})
    out["label"] = pd.Series(predictor.decide(probs), dtype=object if predictor.multi_label else "string")
    for j, label in enumerate(predictor.labels):
        out[f"prob_{label}"] = probs[:, j]
    out["model_uri"] = pd.Series([model["uri"]] * len(out), dtype="string")
    out["model_version"] = pd.Series([model["version"]] * len(out), dtype="string")
    return out


# ------------------------------------------------------------------------------------------ one file


def predict_file(model_uri: str, input_uri: str, output_uri: str, cfg: TextclfConfig,
                 column: str | None = None) -> dict[str, Any]:
    """Score every text of `input_uri` into `output_uri` (Parquet or CSV by its extension), in input
    order, shard by shard with a progress bar; nothing is left at `output_uri` if a row is bad."""
    fmt = OUTPUTS.get(Path(output_uri.split("?")[0]).suffix.lower())
    if fmt is None:
        raise DataError(f"{output_uri}: the output must end in {' or '.join(OUTPUTS)}")
    model = pin_model(model_uri, cfg.registry.tracking_uri)
    texts = open_texts(input_uri, column or cfg.data.text_column, cfg.data.format)
    shards = plan_shards(texts, cfg.predict.shard_rows)
    predictor = load_predictor(model, cfg)
    began, rows = time.perf_counter(), 0
    with atomic_file(output_uri) as local, progress(sum(s.rows for s in shards), "predict", unit="rows") as bar:
        writer = None
        for shard in shards:
            table = score(predictor, read_shard(texts, shard), model)
            writer = _append(local, fmt, table, writer)
            rows += len(table)
            bar.update(len(table))
        if writer is not None:  # Parquet (there is always one shard, if an empty one)
            writer.close()
    seconds = time.perf_counter() - began
    return {"rows": rows, "output": output_uri, "model": model, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1) if seconds else None}


def _append(local: Path, fmt: str, table: pd.DataFrame, writer: Any) -> Any:
    """Add one shard's rows to the file being written; returns the Parquet writer to reuse (None for CSV)."""
    if fmt == "csv":
        flat = table.assign(label=table["label"].map(lambda v: "|".join(v) if isinstance(v, list) else v))
        flat.to_csv(local, mode="a", header=not (local.exists() and local.stat().st_size), index=False)
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    writer = writer or pq.ParquetWriter(local, arrow.schema)
    writer.write_table(arrow)
    return writer


# ------------------------------------------------------------------------------------------- in parts


def part_uri(output: str, index: int) -> str:
    return join(output, f"part-{index:05d}.parquet")


def finished_part(output: str, texts: TextFile, shard: Shard, model: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a part already written for this shard of this input by this model version."""
    uri = part_uri(output, shard.index)
    if not exists(uri):
        return None
    import pyarrow.parquet as pq

    fs, path = filesystem(uri)
    record = json.loads((pq.read_schema(path, filesystem=fs).metadata or {}).get(META_KEY, b"{}"))
    wanted = {"input": texts.uri, "column": texts.column, "span": shard.span,
              "model": {"uri": model["uri"], "version": model["version"]}}
    return record if all(record.get(k) == v for k, v in wanted.items()) else None


def score_shard(texts: TextFile, shard: Shard, model: dict[str, Any], output: str, cfg: TextclfConfig,
                writer: str) -> dict[str, Any]:
    """Score one shard into its part, published whole, unless a finished part for it is there. The
    record says who wrote the part (`written_by`, a task pathspec): reused parts keep their writer."""
    done = finished_part(output, texts, shard, model)
    if done is not None:
        print(f"part {shard.index}: already scored by {done['written_by']} ({done['rows']:,} rows); skipped")
        return done
    import pyarrow as pa
    import pyarrow.parquet as pq

    began = time.perf_counter()
    table = score(load_predictor(model, cfg), read_shard(texts, shard), model)
    record = {"index": shard.index, "input": texts.uri, "column": texts.column, "span": shard.span,
              "model": {"uri": model["uri"], "version": model["version"]}, "rows": len(table),
              "written_by": writer, "seconds": round(time.perf_counter() - began, 3)}
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), META_KEY: json.dumps(record).encode()})
    with atomic_file(part_uri(output, shard.index)) as local:
        pq.write_table(arrow, local)
    print(f"part {shard.index}: scored {len(table):,} rows in {record['seconds']:.1f} s")
    return record


def finish(output: str, texts: TextFile, model: dict[str, Any], parts: list[dict[str, Any]], run: str,
           started: float) -> dict[str, Any]:
    """Remove parts an earlier, differently cut run left beyond this plan, then write `_SUCCESS`:
    the manifest of the output (rows, parts, model, which shards this run scored, time)."""
    parts = sorted(parts, key=lambda p: p["index"])
    fs, path = filesystem(output)
    planned = {part_uri(output, p["index"]).rsplit("/", 1)[-1] for p in parts}
    stale = [f for f in fs.glob(f"{path.rstrip('/')}/part-*.parquet") if f.rsplit("/", 1)[-1] not in planned]
    if stale:
        fs.rm(stale)
    seconds = time.time() - started
    rows = sum(p["rows"] for p in parts)
    manifest = {"input": texts.uri, "column": texts.column, "output": output, "model": model, "rows": rows,
                "shards": len(parts), "parts": [part_uri(output, p["index"]).rsplit("/", 1)[-1] for p in parts],
                "scored": [p["index"] for p in parts if p["written_by"].split("/")[1] == run],
                "reused": [p["index"] for p in parts if p["written_by"].split("/")[1] != run],
                "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds, 1) if seconds else None}
    write_json(join(output, SUCCESS), manifest)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    model = manifest["model"]
    return (f"{manifest['rows']:,} rows of {manifest['input']} predicted by {model['uri']} "
            f"(version {model['version']}) into {manifest['shards']} parts under {manifest['output']}; "
            f"scored now: shards {manifest['scored']}, reused: shards {manifest['reused']}; "
            f"{manifest['seconds']:.1f} s since the start step, {manifest['rows_per_s']} rows/s")

