"""The golden set (`registry.golden`): pinned labelled rows the gate scores both models on.

A test split moves with every data version; these rows do not, so two versions of the data are
compared on the same ground. The file is read as training data is (`data.*` columns and format,
the intake's reader and checks, the same cleaning), and a row that cannot be scored stops the
gate with its file and row named, before anything is registered.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from textclf.config import DataConfig, RegistryConfig
from textclf.data.cleaning import STATUS_OK, clean_text, inspect_partition
from textclf.data.sources import read_source, sources
from textclf.errors import DataError


def _golden_rows(uri: str, data: DataConfig) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The file's rows and the intake's verdict on each (`inspect_partition`); a row without a
    usable text or label is a DataError naming the file and the row."""
    src = sources(replace(data, source=uri, train=None, val=None, test=None, revision=None))[0]
    frame = read_source(src, data).compute().reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{src.uri}: no data rows (registry.golden)")
    thin = inspect_partition(frame, data)
    for row, status in enumerate(thin["status"], start=1):
        if status != STATUS_OK:
            raise DataError(f"{src.uri} row {row} (registry.golden): {status}")
    return src.uri, frame, thin


def check_golden(registry: RegistryConfig, data: DataConfig) -> int | None:
    """TrainFlow's start: a golden set that cannot be read stops the run before training, not at
    the gate after it. Its labels are checked against the model's at the gate. Its row count, or
    None without one."""
    return len(_golden_rows(registry.golden, data)[1]) if registry.golden else None


def read_golden(uri: str, data: DataConfig, id2label: dict[Any, str]) -> pd.DataFrame:
    """`text` (cleaned) and `label` (ids of `id2label`, lists of them for multi-label) of every
    row of the golden file, in order. Labels are matched by name; a row with no usable text, no
    label, or a label the candidate does not know is a DataError naming the file and the row."""
    where, frame, thin = _golden_rows(uri, data)
    label2id = {name: int(i) for i, name in id2label.items()}
    labels: list[Any] = []
    for row, names in enumerate(thin["label"], start=1):
        at = f"{where} row {row} (registry.golden)"
        names = names.split(data.label_delimiter)
        unknown = [n for n in names if n not in label2id]
        if unknown:
            raise DataError(f"{at}: label {unknown[0]!r} is not one of the model's labels {sorted(label2id)}")
        if len(names) > 1 and not data.multi_label:
            raise DataError(f"{at}: several labels for a single-label model")
        labels.append([label2id[n] for n in names] if data.multi_label else label2id[names[0]])
    return pd.DataFrame({"text": [clean_text(t, data.clean) for t in frame["text"]], "label": labels})
