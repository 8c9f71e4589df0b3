"""Classification metrics from probabilities: the quick numbers training selects models by, and
the full test report computed through `evaluate` with our own offline metric modules."""
from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def multi_hot(labels: list[list[int]], n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.int64)
    for i, ls in enumerate(labels):
        out[i, list(ls)] = 1
    return out


def resolve_metric(name: str, multi_label: bool) -> str:
    """`auto` means accuracy for one label per text and micro-F1 for several: subset accuracy
    punishes every partly-right row, so it ranks multi-label models poorly."""
    if name != "auto":
        return name
    return "micro_f1" if multi_label else "accuracy"


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


def metric_interval(y_true, probs: np.ndarray, multi_label: bool, metric: str, threshold: float = 0.5,
                    resamples: int = 500, seed: int = 0) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of one quick metric (rows resampled with replacement)."""
    rng = np.random.default_rng(seed)
    truth = multi_hot(y_true, probs.shape[1]) if multi_label and not isinstance(y_true, np.ndarray) else np.asarray(y_true)
    values = [quick_metrics(truth[idx], probs[idx], multi_label, threshold)[metric]
              for idx in rng.integers(0, len(truth), size=(resamples, len(truth)))]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def best_threshold(truth: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """The global threshold that maximises micro-F1 on held-out data, and that F1."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scores = [f1_score(truth, (probs >= t).astype(int), average="micro", zero_division=0) for t in grid]
    i = int(np.argmax(scores))
    return float(grid[i]), float(scores[i])


def validation_metrics(y_true, probs: np.ndarray, multi_label: bool) -> dict[str, float]:
    """What epoch selection compares. A multi-label model is scored at the threshold fitted on these
    rows, the way it will be saved: at 0.5, an epoch whose sigmoids still sit below 0.5 would lose
    to a worse one whose happen to straddle it."""
    if not multi_label:
        return quick_metrics(y_true, probs, False)
    truth = multi_hot(y_true, probs.shape[1]) if not isinstance(y_true, np.ndarray) else y_true
    threshold, _ = best_threshold(truth, probs)
    return {**quick_metrics(truth, probs, True, threshold), "threshold": threshold}


# --------------------------------------------------------------------------- the test report
# Test metrics go through `evaluate`, with our own metric modules loaded by path (the Hub
# versions of `accuracy`, `f1`, ... need a network). The evaluate notebook calls
# `evaluation_report`; its `metrics` are the run's test metrics, computed nowhere else.

METRIC_MODULES = Path(__file__).resolve().parent / "metric_modules"


class _NoTransformers(importlib.abc.MetaPathFinder):
    """Refuses `transformers` while `evaluate` is imported (see `_import_evaluate`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] == "transformers":
            raise ModuleNotFoundError(f"{name} is not imported for evaluate's Evaluator", name=name)


def _import_evaluate():
    """`evaluate` without the transformers pipelines (and torch) its Evaluator imports on import:
    textclf computes metrics from probabilities and never runs a pipeline through it, and a report
    that reads stored scores then starts seconds sooner. Only the first import is shielded; later
    imports of transformers in the process work as usual (only `evaluate.evaluator` stays off)."""
    if "evaluate" in sys.modules or "transformers" in sys.modules:
        import evaluate

        return evaluate
    shield = _NoTransformers()
    sys.meta_path.insert(0, shield)
    try:
        import evaluate
    finally:
        sys.meta_path.remove(shield)
    return evaluate


def load_metric(name: str):
    """One of our `evaluate` metric modules (see metric_modules/README.md), loaded offline by path."""
    evaluate = _import_evaluate()
    folder = METRIC_MODULES / name
    if not (folder / f"{name}.py").is_file():
        known = sorted(p.name for p in METRIC_MODULES.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"unknown metric module {name!r}; known: {known}")
    return evaluate.load(str(folder), keep_in_memory=True)


def evaluation_report(truth, probs: np.ndarray, labels: list[str], multi_label: bool, threshold: float = 0.5,
                      bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The full test report: `metrics` (flat numbers: the run's test metrics) and `details`
    (per-class tables, confusion matrix, reliability bins, threshold sweep, ...)."""
    probs = np.asarray(probs, dtype=np.float32)
    if multi_label:
        gold = truth if isinstance(truth, np.ndarray) else multi_hot(truth, probs.shape[1])
        details = load_metric("multilabel_report").compute(
            prediction_scores=probs.tolist(), references=gold.tolist(), labels=labels, threshold=threshold)
        keys = ("subset_accuracy", "hamming_loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall",
                "macro_precision", "macro_recall", "threshold")
        return {"metrics": {"n": int(len(gold)), **{k: details[k] for k in keys}}, "details": details}
    gold = np.asarray(truth, dtype=np.int64)
    labels_ = load_metric("classification_report").compute(
        predictions=probs.argmax(1).tolist(), references=gold.tolist(), labels=labels, bootstrap=bootstrap, seed=seed)
    calibration = load_metric("probability_report").compute(
        prediction_scores=probs.tolist(), references=gold.tolist(), labels=labels)
    metrics = {"n": int(len(gold)), "accuracy": labels_["accuracy"]}
    for avg in ("macro", "micro", "weighted"):
        metrics.update({f"{avg}_{k}": labels_[f"{avg}_{k}"] for k in ("f1", "precision", "recall")})
    metrics.update({k: calibration[k] for k in ("roc_auc", "pr_auc", "ece", "brier")})
    for name, (low, high) in labels_.get("ci", {}).items():
        metrics.update({f"{name}_ci_low": low, f"{name}_ci_high": high})
    per_class = {name: {**row, **calibration["per_class"][name]} for name, row in labels_["per_class"].items()}
    details = {**labels_, "per_class": per_class, "reliability": calibration["reliability"]}
    return {"metrics": metrics, "details": details}
