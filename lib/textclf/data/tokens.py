"""Partition-wise tokenization: token ids without padding (batches pad dynamically) and lengths."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd


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
