"""Classification metrics from probabilities: the numbers training selects models by."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def multi_hot(labels: list[list[int]], n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.int64)
    for i, ls in enumerate(labels):
        out[i, list(ls)] = 1
    return out


def quick_metrics(y_true, probs: np.ndarray, multi_label: bool, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy and F1 (single-label) or subset accuracy and F1 (multi-label)."""
    if multi_label:
        truth = multi_hot(y_true, probs.shape[1]) if not isinstance(y_true, np.ndarray) else y_true
        pred = (probs >= threshold).astype(np.int64)
        return {
            "subset_accuracy": float(accuracy_score(truth, pred)),
            "micro_f1": float(f1_score(truth, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        }
    truth = np.asarray(y_true)
    pred = probs.argmax(1)
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
    }


def best_threshold(truth: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The global threshold that maximises micro-F1 on held-out data, and that F1."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scores = [f1_score(truth, (probs >= t).astype(int), average="micro", zero_division=0) for t in grid]
    i = int(np.argmax(scores))
    return float(grid[i]), float(scores[i])
