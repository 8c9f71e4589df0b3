"""Where labelled rows come from: local, gs:// or DVC-tracked files and Hub datasets, read with Dask.

`sources(cfg)` names every input (one file split automatically, or explicit train/val/test
files); `read_source` returns a Dask DataFrame with columns `text`, `label` and `split_hint`,
after the cheap checks that fail fast with the file's name (missing, empty, not UTF-8, columns).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from textclf.config import PROJECT_ROOT, DataConfig
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


def _check_readable(src: Source, cfg: DataConfig) -> None:
    """Fail fast, naming the file, when it is missing, empty, not UTF-8 or lacks a column."""
    if src.is_hub or src.is_dvc:
        return
    fs, path = filesystem(src.uri)
    if not fs.exists(path):
        raise DataError(f"{src.uri}: file not found")
    if fs.isdir(path):
        return
    if fs.size(path) == 0:
        raise DataError(f"{src.uri}: file is empty")
    if src.format == "parquet":
        return
    with fs.open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the block end
            line = head[: exc.start].count(b"\n") + 1
            raise DataError(f"{src.uri}: not valid UTF-8 (line {line}, byte {exc.start})") from None


def _pandas_reader(fmt: str):
    def read(f) -> pd.DataFrame:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(f, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               na_values=[""], encoding="utf-8", quoting=3 if fmt == "tsv" else 0)
        if fmt == "jsonl":
            return pd.read_json(f, lines=True, dtype=False)
        raise AssertionError(fmt)
    return read


def read_source(src: Source, cfg: DataConfig):
    """A Dask DataFrame with columns text, label (raw) and split (hint or None)."""
    import dask.dataframe as dd

    _check_readable(src, cfg)
    blocksize = 16_000_000
    if src.is_hub:
        ddf = _read_hub(src, cfg)
    elif src.is_dvc:
        ddf = _read_dvc(src, cfg)
    elif src.format in ("csv", "tsv"):
        try:
            ddf = dd.read_csv(src.uri, sep="\t" if src.format == "tsv" else ",", dtype=str,
                              keep_default_na=False, na_values=[""], encoding="utf-8",
                              blocksize=blocksize, quoting=3 if src.format == "tsv" else 0)
        except pd.errors.EmptyDataError:
            raise DataError(f"{src.uri}: file has no header row") from None
    elif src.format == "jsonl":
        ddf = dd.read_json(src.uri, lines=True, blocksize=blocksize, dtype=False)
    else:
        ddf = dd.read_parquet(src.uri)
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
