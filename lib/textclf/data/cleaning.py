"""Validation and cleaning of one row at a time, and pass one of preprocessing.

Pass one maps every partition to a thin frame (row position, status, duplicate keys, raw
label) that `textclf.data.split_plan` turns into decisions; nothing but that thin frame ever
sits in one process, so memory stays flat as rows grow.
"""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd

from textclf.config import CleanConfig, DataConfig

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


def hash64(value: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}\x00{value}".encode(), digest_size=8).digest(), "little", signed=True)


def split_labels(raw: Any, cfg: DataConfig) -> list[str]:
    """The class names of one row: list or delimited labels, renamed through `data.label_names`."""
    values = raw if isinstance(raw, (list, tuple, np.ndarray)) else str(raw).split(cfg.label_delimiter)
    return [cfg.label_names.get(v, v) for v in (str(v).strip() for v in values) if v]


def _is_missing(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return bool(pd.isna(value)) or str(value).strip() == ""


STATUS_OK, STATUS_EMPTY_TEXT, STATUS_NO_LABEL, STATUS_NOT_TEXT = "ok", "empty text", "missing label", "text is not a string"
STATUS_HEADER = "a repeated header row"  # files concatenated with their headers


def row_positions(partition: int, local: np.ndarray) -> np.ndarray:
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
        elif state == STATUS_OK and text.strip() == cfg.text_column and str(label).strip() == cfg.label_column:
            state = STATUS_HEADER
        status.append(state)
        exact.append(hash64(cleaned) if state == STATUS_OK else 0)
        norm.append(hash64(normalized_key(cleaned)) if state == STATUS_OK else 0)
        labels.append(cfg.label_delimiter.join(split_labels(label, cfg)) if state == STATUS_OK else "")
    return pd.DataFrame({
        "pos": row_positions(number, local),
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
