"""The Parquet shard layout preprocessing writes, and the one reader every stage uses.

`<data>/shards/{train,val,test}/part-*.parquet` with columns row_id, text, label (an int, or a
list of ints for multi-label), input_ids (token ids, unpadded) and length.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.storage import filesystem

SPLITS = ("train", "val", "test")


def shard_schema(multi_label: bool) -> pa.Schema:
    label = pa.list_(pa.int32()) if multi_label else pa.int32()
    return pa.schema([
        ("row_id", pa.int64()),
        ("text", pa.string()),
        ("label", label),
        ("input_ids", pa.list_(pa.int32())),
        ("length", pa.int32()),
    ])


def read_split(shard_uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A preprocessed split (a folder of shards, or one file; local or gs://) as a DataFrame."""
    fs, path = filesystem(shard_uri)
    return pq.read_table(path, columns=columns, filesystem=fs).to_pandas()


def token_ids(column: pd.Series) -> list[np.ndarray]:
    """The `input_ids` column as int64 arrays, what models take."""
    return [np.asarray(x, dtype=np.int64) for x in column]
