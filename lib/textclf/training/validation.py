"""Logits and probabilities for a whole split, computed across ranks and gathered back in order."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from textclf.model.padding import pad_batch
from textclf.model.probabilities import probabilities
from textclf.training.distributed import Dist, unwrap
from textclf.training.inputs import Split
from textclf.training.sampler import shard_indices


@torch.inference_mode()
def predict_logits(model: nn.Module, split: Split, d: Dist, batch_size: int, pad_id: int,
                   dtype: torch.dtype | None) -> np.ndarray:
    """The model's logits (float32) for every row; temperature scaling is fitted on these."""
    model.eval()
    mine = shard_indices(len(split), d.world_size, d.rank)
    order = mine[np.argsort(split.lengths[mine], kind="stable")]
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(d.device) for k, v in pad_batch([split.input_ids[i] for i in idx], pad_id).items()}
        with torch.autocast(d.device.type, dtype=dtype, enabled=dtype is not None):
            logits = unwrap(model)(**batch).logits.float()
        out.update(zip(idx.tolist(), logits.cpu().numpy()))
    parts = d.gather(np.stack([out[i] for i in mine]) if len(mine) else None)
    model.train()
    return np.concatenate([p for p in parts if p is not None])


def split_probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """`predict_logits`' array as probabilities."""
    return probabilities(torch.from_numpy(logits), multi_label).numpy()
