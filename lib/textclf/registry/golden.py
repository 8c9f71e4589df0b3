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

from textclf.config import DataConfig
from textclf.data.cleaning import STATUS_OK, clean_text, inspect_partition
from textclf.data.sources import read_source, sources
from textclf.errors import DataError


def read_golden(uri: str, data: DataConfig, id2label: dict[Any, str]) -> pd.DataFrame:
    """`text` (cleaned) and `label` (ids of `id2label`, lists of them for multi-label) of every
    row of the golden file, in order. Labels are matched by name; a row with no usable text, no
    label, or a label the candidate does not know is a DataError naming the file and the row."""
    src = sources(replace(data, source=uri, train=None, val=None, test=None, revision=None))[0]
    frame = read_source(src, data).compute().reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{src.uri}: no data rows (registry.golden)")
    label2id = {name: int(i) for i, name in id2label.items()}
    thin = inspect_partition(frame, data)  # the intake's verdict on every row
    labels: list[Any] = []
    for row, (status, names) in enumerate(zip(thin["status"], thin["label"]), start=1):
        where = f"{src.uri} row {row} (registry.golden)"
        if status != STATUS_OK:
            raise DataError(f"{where}: {status}")
        names = names.split(data.label_delimiter)
        unknown = [n for n in names if n not in label2id]
        if unknown:
            raise DataError(f"{where}: label {unknown[0]!r} is not one of the model's labels {sorted(label2id)}")
        if len(names) > 1 and not data.multi_label:
            raise DataError(f"{where}: several labels for a single-label model")
        labels.append([label2id[n] for n in names] if data.multi_label else label2id[names[0]])
    return pd.DataFrame({"text": [clean_text(t, data.clean) for t in frame["text"]], "label": labels})
