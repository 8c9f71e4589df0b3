"""Where labelled rows come from: local, gs:// or DVC-tracked files and Hub datasets, read with Dask.

`sources(cfg)` names every input (one file split automatically, or explicit train/val/test
files); `check_source` runs the cheap checks that fail fast with the file's name (missing, empty,
not UTF-8, columns); `read_source` returns a Dask DataFrame with columns `text`, `label` and
`split_hint`, CSV / TSV / JSONL cut into partitions at record boundaries (`textclf.data.blocks`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.config import PROJECT_ROOT, DataConfig
from textclf.data.blocks import Layout, head_frame, plan_blocks, read_block, sniff
from textclf.data.cleaning import split_labels
from textclf.data.shards import SPLITS
from textclf.errors import DataError
from textclf.storage import filesystem

READERS = {"csv", "tsv", "jsonl", "json", "parquet"}


@dataclass
class Source:
    uri: str
    split: str | None  # None: split automatically
    format: str
    revision: str | None = None

    @property
    def is_dvc(self) -> bool:
        return self.uri.startswith("dvc://")

    @property
    def is_hub(self) -> bool:
        return self.uri.startswith("hf://datasets/") or self.uri.startswith("hub:")


def _locate(path: str) -> str:
    """Relative paths are taken from the working folder, then from the project root."""
    if "://" in path or Path(path).is_absolute() or Path(path).exists():
        return path
    candidate = PROJECT_ROOT / path
    return str(candidate) if candidate.exists() else path


def sources(cfg: DataConfig) -> list[Source]:
    named = [(cfg.source, None)] if cfg.source else []
    named += [(getattr(cfg, s), s) for s in SPLITS if getattr(cfg, s)]
    if cfg.source and any(s for _, s in named[1:]):
        raise DataError("give either data.source (split automatically) or data.train/val/test, not both")
    out = []
    for uri, split in named:
        uri = uri if uri.startswith(("dvc://", "hub:")) else _locate(uri)
        fmt = cfg.format or format_of(dvc_parts(uri)[0] if uri.startswith("dvc://") else uri)
        out.append(Source(uri=uri, split=split, format=fmt, revision=cfg.revision))
    return out


def format_of(uri: str) -> str:
    if uri.startswith(("hub:", "hf://datasets/")):
        return "hub"
    suffix = Path(uri.split("?")[0]).suffix.lower().lstrip(".")
    if suffix in READERS:
        return "jsonl" if suffix == "json" else suffix
    raise DataError(f"{uri}: cannot tell the format from the extension; set data.format (csv, tsv, jsonl, parquet)")


def dvc_parts(uri: str) -> tuple[str, str]:
    """dvc://<path inside the repo>[@<repo>]: the repo defaults to the working folder's git repo."""
    body = uri[len("dvc://"):]
    path, _, repo = body.partition("@")
    return path, repo or "."


def check_source(src: Source, cfg: DataConfig) -> Layout | None:
    """The checks that take seconds whatever the file's size, naming the file: it exists, is not
    empty, is text in UTF-8 (CSV / TSV / JSONL) and has the configured columns. Returns the layout of
    a CSV / TSV / JSONL file (None for Parquet, DVC and Hub sources, read by their own readers)."""
    if src.is_hub or src.is_dvc:
        return None
    fs, path = filesystem(src.uri)
    if not fs.exists(path):
        raise DataError(f"{src.uri}: file not found")
    if src.format == "parquet":
        import pyarrow.parquet as pq

        names = pq.ParquetDataset(path, filesystem=fs).schema.names
        missing = [c for c in (cfg.text_column, cfg.label_column) if c not in names]
        if missing:
            raise DataError(f"{src.uri}: missing column(s) {missing}; found {names} "
                            f"(set data.text_column / data.label_column)")
        return None
    if fs.isdir(path):
        raise DataError(f"{src.uri}: a folder; give one {src.format.upper()} file (folders of Parquet files are read)")
    if fs.size(path) == 0:
        raise DataError(f"{src.uri}: file is empty")
    return sniff(src.uri, src.format, cfg.text_column, cfg.label_column, sep_told=cfg.format is not None)


def check_sources(cfg: DataConfig, head_bytes: int = 1 << 22) -> dict[str, dict[str, Any]]:
    """The checks a run can make in seconds before anything expensive, for every source: those of
    `check_source`, and, from the head of each CSV / TSV / JSONL file, the labels it holds. When the
    head is the whole file, fewer than two classes is an error here rather than after a
    Dask cluster started. Returns, per source, how it is read and what its head holds."""
    found: dict[str, dict[str, Any]] = {}
    for src in sources(cfg):
        layout = check_source(src, cfg)
        entry: dict[str, Any] = {"format": layout.describe() if layout else src.format}
        if layout is not None:
            head, whole = head_frame(layout, head_bytes)
            labels = [label for text, raw in zip(head["text"], head["label"])
                      if isinstance(text, str) and text.strip() and not pd.isna(raw)
                      for label in split_labels(raw, cfg)]
            classes = pd.Series(labels, dtype=object).value_counts()
            entry.update(rows=len(head), whole_file=whole, classes={str(k): int(v) for k, v in classes.items()})
            if whole and not len(head):
                raise DataError(f"{src.uri}: no data rows")
            if whole and src.split in (None, "train") and len(classes) < 2:
                raise DataError(f"{src.uri}: need at least 2 classes; found {dict(entry['classes'])} in column "
                                f"{cfg.label_column!r}")
        found[src.uri] = entry
    return found


def _pandas_reader(fmt: str):
    def read(f) -> pd.DataFrame:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(f, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               na_values=[""], encoding="utf-8-sig", quoting=3 if fmt == "tsv" else 0)
        if fmt == "jsonl":
            return pd.read_json(f, lines=True, dtype=False)
        raise AssertionError(fmt)
    return read


def read_source(src: Source, cfg: DataConfig):
    """A Dask DataFrame with columns text, label (raw) and split_hint (the named split, or "")."""
    import dask.dataframe as dd

    layout = check_source(src, cfg)
    if layout is not None:
        meta = pd.DataFrame({"text": pd.Series(dtype=object), "label": pd.Series(dtype=object)})
        ddf = dd.from_map(read_block, plan_blocks(layout, cfg.dask.blocksize), layout=layout, meta=meta,
                          label=f"read-{src.format}")
        return ddf.assign(split_hint=src.split or "")
    ddf = _read_hub(src, cfg) if src.is_hub else _read_dvc(src, cfg) if src.is_dvc else dd.read_parquet(src.uri)
    missing = [c for c in (cfg.text_column, cfg.label_column) if c not in ddf.columns]
    if missing:
        raise DataError(f"{src.uri}: missing column(s) {missing}; found {list(ddf.columns)} "
                        f"(set data.text_column / data.label_column)")
    ddf = ddf[[cfg.text_column, cfg.label_column]].rename(columns={cfg.text_column: "text", cfg.label_column: "label"})
    return ddf.assign(split_hint=src.split or "")


def _read_dvc(src: Source, cfg: DataConfig):
    import dask.dataframe as dd
    import dvc.api

    path, repo = dvc_parts(src.uri)
    try:
        with dvc.api.open(path, repo=repo, rev=src.revision, mode="rb") as f:
            frame = pd.read_parquet(f) if src.format == "parquet" else _pandas_reader(src.format)(f)
    except FileNotFoundError:
        raise DataError(f"{src.uri}: not found in the DVC repo {repo!r} at revision {src.revision or 'HEAD'}") from None
    return dd.from_pandas(frame, npartitions=max(1, len(frame) // cfg.dask.partition_rows))


def _read_hub(src: Source, cfg: DataConfig):
    import dask.dataframe as dd
    from datasets import load_dataset

    name = src.uri.removeprefix("hub:").removeprefix("hf://datasets/")
    name, _, split = name.partition(":")
    frame = load_dataset(name, split=split or "train").to_pandas()
    return dd.from_pandas(frame, npartitions=max(1, len(frame) // cfg.dask.partition_rows))
