"""Dynamic padding: a batch of token-id sequences padded to its own longest, not a global maximum."""
from __future__ import annotations

import numpy as np
import torch


def pad_batch(input_ids: list[np.ndarray], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in input_ids)
    ids = np.full((len(input_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(input_ids), width), dtype=np.int64)
    for i, x in enumerate(input_ids):
        ids[i, :len(x)] = x
        mask[i, :len(x)] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
