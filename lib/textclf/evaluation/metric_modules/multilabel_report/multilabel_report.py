"""Multi-label report from label probabilities and gold multi-hot rows (an `evaluate.Metric`).

Loaded by path (`textclf.metrics.load_metric("multilabel_report")`): no Hub access.
"""
from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

_DESCRIPTION = "Subset accuracy, Hamming loss, micro/macro precision/recall/F1, per-label report, threshold sweep."
_KWARGS = """
Args:
    prediction_scores (list of list of float): independent label probabilities per row.
    references (list of list of int): gold multi-hot rows.
    labels (list of str, optional): label names, index = column.
    threshold (float): a label is predicted when its probability is >= threshold.
    sweep (list of float, optional): thresholds to report micro/macro F1 and subset accuracy at.
"""


class MultilabelReport(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"prediction_scores": datasets.Sequence(datasets.Value("float32")),
                                        "references": datasets.Sequence(datasets.Value("int64"))}))

    def _compute(self, prediction_scores, references, labels=None, threshold: float = 0.5, sweep=None):
        probs, gold = np.asarray(prediction_scores, dtype=np.float64), np.asarray(references, dtype=int)
        names = list(labels) if labels else [str(i) for i in range(probs.shape[1])]
        pred = (probs >= threshold).astype(int)
        out = {"threshold": float(threshold), "subset_accuracy": float(accuracy_score(gold, pred)),
               "hamming_loss": float(hamming_loss(gold, pred))}
        for avg in ("micro", "macro"):
            p, r, f, _ = precision_recall_fscore_support(gold, pred, average=avg, zero_division=0)
            out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
        p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
        out["per_label"] = {name: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]),
                                   "support": int(s[j]), "predicted": int(pred[:, j].sum())}
                            for j, name in enumerate(names)}
        grid = np.round(np.arange(0.05, 0.96, 0.05), 2) if sweep is None else np.asarray(sweep, dtype=float)
        out["threshold_sweep"] = [
            {"threshold": float(t),
             "micro_f1": float(f1_score(gold, probs >= t, average="micro", zero_division=0)),
             "macro_f1": float(f1_score(gold, probs >= t, average="macro", zero_division=0)),
             "subset_accuracy": float(accuracy_score(gold, (probs >= t).astype(int)))} for t in grid]
        out["labels"] = names
        return out
