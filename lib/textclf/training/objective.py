"""What a training step minimises: the loss for the task, and FGM's adversarial second pass."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textclf.config import TrainConfig
from textclf.evaluation.metrics import multi_hot
from textclf.training.distributed import unwrap


def positive_weights(train_labels: list[list[int]], n_labels: int) -> torch.Tensor:
    """BCE's `pos_weight` per label: negatives over positives in train (a label never seen counts
    once), so a rare tag's few positives weigh as much as its many negatives instead of its sigmoid
    settling at the base rate."""
    positives = multi_hot(train_labels, n_labels).sum(0).astype(np.float64)
    return torch.tensor((len(train_labels) - positives) / np.maximum(positives, 1), dtype=torch.float32)


def make_loss(cfg: TrainConfig, multi_label: bool, train_labels: list[Any], n_labels: int) -> Callable:
    if multi_label:
        pos_weight = positive_weights(train_labels, n_labels) if cfg.class_weights else None
        return lambda logits, y: F.binary_cross_entropy_with_logits(
            logits.float(), y.float(), pos_weight=pos_weight.to(logits.device) if pos_weight is not None else None)
    weight = None
    if cfg.class_weights:
        counts = np.bincount(np.asarray(train_labels), minlength=n_labels).astype(np.float64)
        weight = torch.tensor(counts.sum() / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = weight.to(logits.device) if weight is not None else None
        if cfg.loss == "focal":
            logp = F.log_softmax(logits.float(), -1)
            ce = F.nll_loss(logp, y, weight=w, reduction="none")
            pt = logp.gather(1, y[:, None]).squeeze(1).exp()
            return ((1 - pt) ** cfg.focal_gamma * ce).mean()
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=cfg.label_smoothing)

    return loss


class EmbeddingAttack:
    """FGM adversarial training (Miyato et al., 2017): each batch is fit once more with the word
    embeddings moved `eps` (L2) up the loss gradient. The model must then classify a sentence and
    its worst nearby wording alike, which regularizes against memorising exact phrasings; it costs
    a second forward and backward pass per batch.
    """

    def __init__(self, model: nn.Module, eps: float):
        self.weight = unwrap(model).get_input_embeddings().weight
        self.eps = eps

    @contextmanager
    def perturbed(self) -> Iterator[None]:
        grad = self.weight.grad
        norm = grad.norm().item() if grad is not None else 0.0  # one device sync per batch, not three
        if not math.isfinite(norm) or norm == 0:
            yield
            return
        clean = self.weight.data.clone()  # restored bit for bit: resumed runs stay identical
        self.weight.data.add_(grad, alpha=self.eps / norm)
        try:
            yield
        finally:
            self.weight.data.copy_(clean)
