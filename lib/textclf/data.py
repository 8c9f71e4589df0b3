"""Read, validate, clean, dedupe, encode and split labelled text with Dask.

Two passes over the data. Pass one maps every partition to a thin frame (row position, status,
duplicate keys, raw label) that the client turns into decisions: which rows are bad, which are
duplicates, the label map, and a deterministic stratified split. Pass two re-reads the data,
applies those decisions and hands the kept rows to tokenization. Nothing but the thin frame
ever sits in one process, so memory stays flat as rows grow.
"""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.config import PROJECT_ROOT, CleanConfig, DataConfig
from textclf.errors import DataError
from textclf.storage import filesystem, is_remote

SPLITS = ("train", "val", "test")
SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
DROP = -1
READERS = {"csv", "tsv", "jsonl", "json", "parquet"}


# --------------------------------------------------------------------------- sources

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
        fmt = cfg.format or _format_of(_dvc_parts(uri)[0] if uri.startswith("dvc://") else uri)
        out.append(Source(uri=uri, split=split, format=fmt, revision=cfg.revision))
    return out


def _format_of(uri: str) -> str:
    if uri.startswith(("hub:", "hf://datasets/")):
        return "hub"
    suffix = Path(uri.split("?")[0]).suffix.lower().lstrip(".")
    if suffix in READERS:
        return "jsonl" if suffix == "json" else suffix
    raise DataError(f"{uri}: cannot tell the format from the extension; set data.format (csv, tsv, jsonl, parquet)")


def _dvc_parts(uri: str) -> tuple[str, str]:
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

    path, repo = _dvc_parts(src.uri)
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


# --------------------------------------------------------------------------- fingerprint

def fingerprint(srcs: list[Source]) -> dict[str, Any]:
    """Content hash of every source (and the DVC md5 / revision when DVC-tracked)."""
    parts: dict[str, Any] = {}
    digest = hashlib.sha256()
    for src in srcs:
        entry: dict[str, Any] = {"split": src.split}
        if src.is_dvc:
            from dvc.api import DVCFileSystem

            path, repo = _dvc_parts(src.uri)
            info = DVCFileSystem(repo, rev=src.revision).info(path)
            entry.update(dvc_md5=info.get("md5") or info.get("dvc_info", {}).get("md5"), dvc_rev=src.revision or "HEAD")
            entry["sha256"] = entry["dvc_md5"]
        elif src.is_hub:
            entry["sha256"] = hashlib.sha256(src.uri.encode()).hexdigest()
        else:
            fs, path = filesystem(src.uri)
            h = hashlib.sha256()
            for file in sorted(fs.find(path)) if fs.isdir(path) else [path]:
                with fs.open(file, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            entry["sha256"] = h.hexdigest()
        parts[src.uri] = entry
        digest.update(f"{src.split}:{entry['sha256']}".encode())
    return {"sha256": digest.hexdigest(), "sources": parts}


# --------------------------------------------------------------------------- cleaning

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_TAG = re.compile(r"<[^>]{1,200}>")
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def clean_text(text: str, cfg: CleanConfig) -> str:
    text = unicodedata.normalize(cfg.unicode_form, text) if cfg.unicode_form else text
    if cfg.html == "strip":
        text = html.unescape(_TAG.sub(" ", text))
    if cfg.urls != "keep":
        text = _URL.sub(" URL " if cfg.urls == "replace" else " ", text)
    if cfg.mentions != "keep":
        text = _MENTION.sub(" @user " if cfg.mentions == "replace" else " ", text)
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if cfg.lowercase else text


def normalized_key(text: str) -> str:
    """What makes two texts 'the same' beyond exact equality: case, punctuation, spacing."""
    return _SPACE.sub(" ", _NON_WORD.sub(" ", text.casefold())).strip()


def _hash64(value: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}\x00{value}".encode(), digest_size=8).digest(), "little", signed=True)


def split_labels(raw: Any, cfg: DataConfig) -> list[str]:
    """The class names of one row: list or delimited labels, renamed through `data.label_names`."""
    values = raw if isinstance(raw, (list, tuple, np.ndarray)) else str(raw).split(cfg.label_delimiter)
    return [cfg.label_names.get(v, v) for v in (str(v).strip() for v in values) if v]


def _is_missing(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return bool(pd.isna(value)) or str(value).strip() == ""


# --------------------------------------------------------------------------- pass one: inspect

STATUS_OK, STATUS_EMPTY_TEXT, STATUS_NO_LABEL, STATUS_NOT_TEXT = "ok", "empty text", "missing label", "text is not a string"


def _pos(partition: int, local: np.ndarray) -> np.ndarray:
    return (np.int64(partition) << 32) + local.astype(np.int64)


def inspect_partition(part: pd.DataFrame, cfg: DataConfig, partition_info: dict | None = None) -> pd.DataFrame:
    """The thin frame for one partition: position, status, duplicate keys, raw label text."""
    number = partition_info["number"] if partition_info else 0
    local = np.arange(len(part))
    status, exact, norm, labels = [], [], [], []
    for text, label in zip(part["text"].tolist(), part["label"].tolist()):
        if not isinstance(text, str):
            state = STATUS_EMPTY_TEXT if _is_missing(text) else STATUS_NOT_TEXT
            cleaned = ""
        else:
            cleaned = clean_text(text, cfg.clean)
            state = STATUS_OK if cleaned else STATUS_EMPTY_TEXT
        if state == STATUS_OK and _is_missing(label):
            state = STATUS_NO_LABEL
        status.append(state)
        exact.append(_hash64(cleaned) if state == STATUS_OK else 0)
        norm.append(_hash64(normalized_key(cleaned)) if state == STATUS_OK else 0)
        labels.append(cfg.label_delimiter.join(split_labels(label, cfg)) if state == STATUS_OK else "")
    return pd.DataFrame({
        "pos": _pos(number, local),
        "partition": np.full(len(part), number, dtype=np.int32),
        "local": local.astype(np.int32),
        "status": pd.Series(status, dtype="string"),
        "key_exact": np.asarray(exact, dtype=np.int64),
        "key_norm": np.asarray(norm, dtype=np.int64),
        "label": pd.Series(labels, dtype="string"),
        "split_hint": part["split_hint"].astype("string").to_numpy(),
    })


INSPECT_META = pd.DataFrame({
    "pos": pd.Series(dtype="int64"), "partition": pd.Series(dtype="int32"), "local": pd.Series(dtype="int32"),
    "status": pd.Series(dtype="string"), "key_exact": pd.Series(dtype="int64"), "key_norm": pd.Series(dtype="int64"),
    "label": pd.Series(dtype="string"), "split_hint": pd.Series(dtype="string"),
})


# --------------------------------------------------------------------------- decisions

@dataclass
class Plan:
    """What pass two needs: the split of every kept row and the label map, plus the report."""
    assign: pd.Series  # pos -> split code (DROP for dropped rows)
    id2label: dict[int, str]
    multi_label: bool
    report: dict[str, Any] = field(default_factory=dict)


def _locate_rows(thin: pd.DataFrame, spans: list[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The source file and 1-based data row (header not counted) of every row of the thin frame.

    `spans` gives, per source, its first and one-past-last partition number.
    """
    n_parts = max(stop for _, _, stop in spans)
    sizes = thin.groupby("partition").size().reindex(range(n_parts), fill_value=0)
    offsets = (sizes.cumsum() - sizes).to_numpy()
    part = thin["partition"].to_numpy()
    files = np.empty(len(thin), dtype=object)
    rows = np.zeros(len(thin), dtype=np.int64)
    for uri, start, stop in spans:
        mask = (part >= start) & (part < stop)
        files[mask] = uri
        rows[mask] = offsets[part[mask]] - offsets[start] + thin["local"].to_numpy()[mask] + 1
    return files, rows


def plan(thin: pd.DataFrame, cfg: DataConfig, seed: int, source_spans: list[tuple[str, int, int]]) -> Plan:
    """Every decision about rows, made once on the thin frame; raises DataError on bad input."""
    thin = thin.sort_values("pos", kind="stable").reset_index(drop=True)
    total = len(thin)
    if total == 0:
        raise DataError(f"{', '.join(u for u, *_ in source_spans)}: no data rows")
    file_of, rows = _locate_rows(thin, source_spans)
    bad = thin["status"] != STATUS_OK
    bad_rows = [{"file": str(file_of[i]), "row": int(rows[i]), "reason": str(thin["status"][i])}
                for i in np.flatnonzero(bad.to_numpy())[:20]]
    n_bad = int(bad.sum())
    if n_bad > cfg.max_bad_fraction * total:
        first = "; ".join(f"{b['file']} row {b['row']}: {b['reason']}" for b in bad_rows[:5])
        raise DataError(f"{n_bad} of {total} rows are bad, over the tolerance data.max_bad_fraction="
                        f"{cfg.max_bad_fraction}: {first}")
    good = thin[~bad]

    label_lists = good["label"].map(lambda s: s.split(cfg.label_delimiter))
    if cfg.labels is not None:
        allowed = set(cfg.labels)
        unknown = label_lists.map(lambda ls: [l for l in ls if l not in allowed])
        offenders = unknown[unknown.map(len) > 0]
        if len(offenders):
            i = offenders.index[0]
            raise DataError(f"{file_of[i]} row {rows[i]}: label {offenders[i][0]!r} is not in the declared "
                            f"label set {sorted(allowed)} ({len(offenders)} such rows)")
    if not cfg.multi_label:
        multi = label_lists.map(len) > 1
        if multi.any():
            i = multi[multi].index[0]
            raise DataError(f"{file_of[i]} row {rows[i]}: several labels in a single-label dataset "
                            f"(set data.multi_label=true)")

    # Duplicates: keep the first occurrence, preferring test > val > train for explicit splits.
    priority = good["split_hint"].map({"test": 0, "val": 1, "train": 2, "": 3}).astype(int)
    ordered = good.assign(_prio=priority).sort_values(["_prio", "pos"], kind="stable")
    n_exact = int(ordered.duplicated("key_exact").sum()) if cfg.dedupe else 0
    kept = ordered.drop_duplicates("key_norm") if cfg.dedupe else ordered
    n_norm = len(ordered) - len(kept) - n_exact if cfg.dedupe else 0
    kept_lists = label_lists.loc[kept.index]

    counts = pd.Series([l for ls in kept_lists for l in ls]).value_counts()
    rare = sorted(counts[counts < cfg.min_count].index.tolist())
    if rare:
        kept_lists = kept_lists.map(lambda ls: [l for l in ls if l not in rare])
        kept = kept[kept_lists.map(len) > 0]
        kept_lists = kept_lists.loc[kept.index]
    names = list(cfg.labels) if cfg.labels is not None else sorted(counts.index.tolist())
    names = [n for n in names if n not in rare and n in counts.index]
    if len(names) < 2:
        where = ", ".join(u for u, *_ in source_spans)
        raise DataError(f"{where}: need at least 2 classes with >= data.min_count={cfg.min_count} rows; "
                        f"found {dict(counts)} in column {cfg.label_column!r}")
    label2id = {n: i for i, n in enumerate(names)}

    split = _assign_splits(kept, kept_lists, cfg, seed)
    assign = pd.Series(DROP, index=thin["pos"].to_numpy(), dtype=np.int8)
    assign.loc[kept["pos"].to_numpy()] = split.to_numpy().astype(np.int8)

    by_split = {}
    for code, name in enumerate(SPLITS):
        members = kept_lists[split.to_numpy() == code]
        flat = pd.Series([l for ls in members for l in ls], dtype="string").value_counts()
        by_split[name] = {"rows": int(len(members)), "classes": {n: int(flat.get(n, 0)) for n in names}}
    report = {
        "rows_read": total,
        "bad_rows": n_bad,
        "bad_row_examples": bad_rows,
        "duplicates_exact": n_exact,
        "duplicates_normalized": n_norm,
        "dropped_rare_classes": rare,
        "rows_kept": int(len(kept)),
        "splits": by_split,
    }
    return Plan(assign=assign, id2label={i: n for n, i in label2id.items()}, multi_label=cfg.multi_label, report=report)


def _assign_splits(kept: pd.DataFrame, label_lists: pd.Series, cfg: DataConfig, seed: int) -> pd.Series:
    """Deterministic stratified split by a seeded hash of the normalized text.

    Each stratum (the label, or for multi-label the rarest label of the row) is ordered by the
    hash; the first test_fraction of it goes to test, the next val_fraction to val. Rows with the
    same normalized text share a hash, so duplicates can never straddle splits.
    """
    hint = kept["split_hint"].to_numpy()
    if (hint != "").all():
        out = pd.Series([SPLIT_CODE[h] for h in hint], index=kept.index)
        if "val" not in set(hint) or "test" not in set(hint):
            out = _carve(out, kept, label_lists, cfg, seed, missing={"val", "test"} - set(hint))
        return out
    return _carve(pd.Series(SPLIT_CODE["train"], index=kept.index), kept, label_lists, cfg, seed, {"val", "test"})


def _carve(out: pd.Series, kept: pd.DataFrame, label_lists: pd.Series, cfg: DataConfig, seed: int,
           missing: set[str]) -> pd.Series:
    pool = out[out == SPLIT_CODE["train"]].index
    freq = pd.Series([l for ls in label_lists.loc[pool] for l in ls]).value_counts()
    stratum = label_lists.loc[pool].map(lambda ls: min(ls, key=lambda l: (freq[l], l)))
    salt = f"split:{seed}"
    h = kept.loc[pool, "key_norm"].map(lambda k: _hash64(str(k), salt))
    frame = pd.DataFrame({"stratum": stratum, "h": h}).sort_values(["stratum", "h"], kind="stable")
    frame["rank"] = frame.groupby("stratum").cumcount()
    size = frame.groupby("stratum")["h"].transform("size")
    test_frac = cfg.test_fraction if "test" in missing else 0.0
    val_frac = cfg.val_fraction if "val" in missing else 0.0
    n_test = np.floor(size * test_frac + 0.5).astype(int)
    n_val = np.floor(size * val_frac + 0.5).astype(int)
    codes = np.where(frame["rank"] < n_test, SPLIT_CODE["test"],
                     np.where(frame["rank"] < n_test + n_val, SPLIT_CODE["val"], SPLIT_CODE["train"]))
    out = out.copy()
    out.loc[frame.index] = codes
    return out


# --------------------------------------------------------------------------- pass two: materialize

def materialize_partition(part: pd.DataFrame, assign: pd.Series, label2id: dict[str, int], cfg: DataConfig,
                          partition_info: dict | None = None) -> pd.DataFrame:
    """Kept rows of one partition: cleaned text, encoded label(s) and split code."""
    number = partition_info["number"] if partition_info else 0
    pos = _pos(number, np.arange(len(part)))
    codes = assign.reindex(pos).fillna(DROP).astype(np.int8).to_numpy()
    keep = codes != DROP
    texts = [clean_text(t, cfg.clean) for t in part["text"].to_numpy()[keep]]
    raw = part["label"].to_numpy()[keep]
    if cfg.multi_label:
        labels = [[label2id[l] for l in split_labels(r, cfg) if l in label2id] for r in raw]
    else:
        labels = [label2id[split_labels(r, cfg)[0]] for r in raw]
    return pd.DataFrame({"row_id": pos[keep], "text": pd.Series(texts, dtype="string"),
                         "label": labels, "split": codes[keep]})
