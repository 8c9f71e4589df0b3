"""Partition-wise tokenization: token ids without padding (batches pad dynamically) and lengths.

Workers tokenize with the Rust tokenizer alone, rebuilt from the JSON of the one transformers
builds for the backbone (`backend_json`, made once per run): the same ids as
`AutoTokenizer(texts, truncation=True, max_length=...)`, without importing transformers and torch
in every worker (a quarter-GB and seconds each).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd


@lru_cache(maxsize=4)
def backend_json(tokenizer_path: str) -> str:
    """The backbone's Rust tokenizer as transformers configures it (normalizer, special tokens,
    post-processor), serialized."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_path).backend_tokenizer.to_str()


@lru_cache(maxsize=4)
def load_tokenizer(spec: str, max_length: int):
    """Once per worker process: truncating at `max_length`, never padding."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(spec)
    tok.enable_truncation(max_length)
    tok.no_padding()
    return tok


def tokenize_partition(part: pd.DataFrame, spec: str, max_length: int) -> pd.DataFrame:
    """Token ids without padding (batches pad dynamically) and their lengths; `spec` is `backend_json`'s."""
    tok = load_tokenizer(spec, max_length)
    ids = [np.asarray(e.ids, dtype=np.int32) for e in tok.encode_batch(part["text"].astype(str).tolist())]
    out = part.drop(columns=["split"], errors="ignore").copy()
    out["input_ids"] = ids
    out["length"] = np.asarray([len(x) for x in ids], dtype=np.int32)
    return out
