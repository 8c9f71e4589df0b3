"""Logits to probabilities: a softmax over the labels, or a sigmoid per label for multi-label. What
every scorer in the package computes (the folder's own `modeling_textclf.py` and the MLflow pyfunc
are copied out of the package and keep their own line)."""
from __future__ import annotations

import torch


def probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multi_label else logits.softmax(-1)
