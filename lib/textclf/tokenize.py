"""Partition-wise tokenization into Parquet shards with an explicit schema."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa


def shard_schema(multi_label: bool) -> pa.Schema:
    label = pa.list_(pa.int32()) if multi_label else pa.int32()
    return pa.schema([
        ("row_id", pa.int64()),
        ("text", pa.string()),
        ("label", label),
        ("input_ids", pa.list_(pa.int32())),
        ("length", pa.int32()),
    ])


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """Once per worker process: the tokenizer is loaded where it runs, never shipped in the graph."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def tokenize_partition(part: pd.DataFrame, tokenizer_path: str, max_length: int) -> pd.DataFrame:
    """Token ids without padding (batches pad dynamically) and their lengths."""
    tok = load_tokenizer(tokenizer_path)
    texts = part["text"].astype(str).tolist()
    ids = tok(texts, truncation=True, max_length=max_length, padding=False)["input_ids"] if texts else []
    out = part.drop(columns=["split"], errors="ignore").copy()
    out["input_ids"] = [np.asarray(x, dtype=np.int32) for x in ids]
    out["length"] = np.asarray([len(x) for x in ids], dtype=np.int32)
    return out


def meta_frame(multi_label: bool) -> pd.DataFrame:
    return shard_schema(multi_label).empty_table().to_pandas()
