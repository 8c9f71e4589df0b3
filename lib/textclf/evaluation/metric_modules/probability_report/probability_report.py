"""Single-label probability quality: ROC-AUC, PR-AUC (one-vs-rest), calibration (an `evaluate.Metric`).

Loaded by path (`textclf.metrics.load_metric("probability_report")`): no Hub access.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

_DESCRIPTION = "One-vs-rest ROC-AUC and PR-AUC, expected calibration error with reliability bins, Brier score."
_KWARGS = """
Args:
    prediction_scores (list of list of float): class probabilities per row (rows sum to 1).
    references (list of int): gold label ids.
    labels (list of str, optional): class names, index = label id.
    n_bins (int): equal-width confidence bins for ECE and the reliability diagram.
"""


class ProbabilityReport(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"prediction_scores": datasets.Sequence(datasets.Value("float32")),
                                        "references": datasets.Value("int64")}))

    def _compute(self, prediction_scores, references, labels=None, n_bins: int = 10):
        probs, gold = np.asarray(prediction_scores, dtype=np.float64), np.asarray(references)
        n_classes = probs.shape[1]
        names = list(labels) if labels else [str(i) for i in range(n_classes)]
        onehot = np.eye(n_classes, dtype=int)[gold]
        per_class = {}
        for j, name in enumerate(names):
            present = 0 < onehot[:, j].sum() < len(gold)  # AUC needs both outcomes
            per_class[name] = {
                "roc_auc": float(roc_auc_score(onehot[:, j], probs[:, j])) if present else None,
                "pr_auc": float(average_precision_score(onehot[:, j], probs[:, j])) if present else None}
        defined = [v for v in per_class.values() if v["roc_auc"] is not None]
        pred = probs.argmax(1)
        conf = probs.max(1)
        correct = (pred == gold).astype(float)
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
        bins, ece = [], 0.0
        for b in range(n_bins):
            member = which == b
            count = int(member.sum())
            bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                         "confidence": float(conf[member].mean()) if count else None,
                         "accuracy": float(correct[member].mean()) if count else None})
            if count:
                ece += count / len(gold) * abs(conf[member].mean() - correct[member].mean())
        # Binary tasks: the usual single AUC of the positive class (label id 1) equals either class's.
        return {
            "roc_auc": float(np.mean([v["roc_auc"] for v in defined])) if defined else None,
            "pr_auc": (per_class[names[1]]["pr_auc"] if n_classes == 2
                       else float(np.mean([v["pr_auc"] for v in defined])) if defined else None),
            "per_class": per_class,
            "ece": float(ece),
            "brier": float(np.mean(np.sum((probs - onehot) ** 2, axis=1))),
            "reliability": bins,
        }
