"""Single-label classification report from predicted and gold label ids (an `evaluate.Metric`).

Loaded by path (`textclf.metrics.load_metric("classification_report")`): no Hub access.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

_DESCRIPTION = "Accuracy, precision/recall/F1 (macro, micro, weighted), per-class report, confusion matrix, bootstrap CIs."
_KWARGS = """
Args:
    predictions (list of int): predicted label ids.
    references (list of int): gold label ids.
    labels (list of str, optional): class names, index = label id; default: the ids as strings.
    bootstrap (int): resamples for 95% confidence intervals of accuracy and macro F1 (0: none).
    seed (int): resampling seed.
"""


class ClassificationReport(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, labels=None, bootstrap: int = 0, seed: int = 0,
                 confidence: float = 0.95):
        pred, gold = np.asarray(predictions), np.asarray(references)
        n_classes = len(labels) if labels else int(max(pred.max(initial=0), gold.max(initial=0)) + 1)
        names = list(labels) if labels else [str(i) for i in range(n_classes)]
        ids = list(range(n_classes))
        out = {"accuracy": float(accuracy_score(gold, pred))}
        for avg in ("macro", "micro", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=ids, average=avg, zero_division=0)
            out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
        p, r, f, s = precision_recall_fscore_support(gold, pred, labels=ids, average=None, zero_division=0)
        out["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                   "support": int(s[i])} for i, name in enumerate(names)}
        out["confusion_matrix"] = confusion_matrix(gold, pred, labels=ids).tolist()
        out["labels"] = names
        if bootstrap:
            out["ci"] = _bootstrap(gold, pred, ids, bootstrap, seed, confidence)
        return out


def _bootstrap(gold, pred, ids, rounds: int, seed: int, confidence: float) -> dict[str, list[float]]:
    """Percentile intervals over resamples of the test rows (with replacement).

    Each resample's confusion matrix comes from one bincount, so 1,000 rounds take milliseconds.
    """
    rng = np.random.default_rng(seed)
    n, k = len(gold), len(ids)
    idx = rng.integers(0, n, (rounds, n))
    cells = (gold[idx] * k + pred[idx]) + (np.arange(rounds) * k * k)[:, None]
    cm = np.bincount(cells.ravel(), minlength=rounds * k * k).reshape(rounds, k, k)
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    denom = cm.sum(1) + cm.sum(2)  # (tp + fn) + (tp + fp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(1)
    acc = tp.sum(1) / n
    lo, hi = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    return {"accuracy": [float(np.percentile(acc, lo)), float(np.percentile(acc, hi))],
            "macro_f1": [float(np.percentile(f1, lo)), float(np.percentile(f1, hi))]}
