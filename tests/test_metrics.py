"""The test report (through `evaluate` and our offline metric modules) against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, hamming_loss,
                             precision_score, recall_score, roc_auc_score)

from textclf.evaluation.metrics import evaluation_report, load_metric, quick_metrics, validation_metrics


def noisy_probs(truth: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Probabilities that lean towards the truth, so no score is trivially 0, 0.5 or 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(truth), k)) + 1.2 * np.eye(k)[truth]
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def expected_calibration_error(truth, probs, bins=10):
    conf, right = probs.max(1), probs.argmax(1) == truth
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        member = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if member.any():
            total += member.mean() * abs(conf[member].mean() - right[member].mean())
    return total


@pytest.mark.parametrize("k", [2, 4])
def test_single_label_report_matches_sklearn(k):
    rng = np.random.default_rng(k)
    truth = rng.integers(0, k, 300)
    probs = noisy_probs(truth, k, seed=k)
    pred = probs.argmax(1)
    labels = [f"c{i}" for i in range(k)]
    report = evaluation_report(truth, probs, labels, multi_label=False, bootstrap=300)
    m = report["metrics"]

    assert m["n"] == 300
    assert 0.3 < m["accuracy"] < 0.95  # a real test, not a degenerate one
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    for avg in ("macro", "micro", "weighted"):
        assert m[f"{avg}_f1"] == pytest.approx(f1_score(truth, pred, average=avg))
        assert m[f"{avg}_precision"] == pytest.approx(precision_score(truth, pred, average=avg))
        assert m[f"{avg}_recall"] == pytest.approx(recall_score(truth, pred, average=avg))
    if k == 2:
        assert m["roc_auc"] == pytest.approx(roc_auc_score(truth, probs[:, 1]))
        assert m["pr_auc"] == pytest.approx(average_precision_score(truth, probs[:, 1]))
    else:
        assert m["roc_auc"] == pytest.approx(roc_auc_score(truth, probs, multi_class="ovr", average="macro"))
        assert m["pr_auc"] == pytest.approx(average_precision_score(np.eye(k)[truth], probs, average="macro"))
    assert m["ece"] == pytest.approx(expected_calibration_error(truth, probs), abs=1e-6)
    assert m["brier"] == pytest.approx(np.mean(np.sum((probs - np.eye(k)[truth]) ** 2, 1)), rel=1e-5)
    for name in ("accuracy", "macro_f1"):
        assert m[f"{name}_ci_low"] < m[name] < m[f"{name}_ci_high"]

    details = report["details"]
    assert np.array_equal(details["confusion_matrix"], np.bincount(truth * k + pred, minlength=k * k).reshape(k, k))
    per_f1 = f1_score(truth, pred, average=None)
    for i, name in enumerate(labels):
        assert details["per_class"][name]["f1"] == pytest.approx(per_f1[i])
        assert details["per_class"][name]["support"] == int((truth == i).sum())
    assert sum(b["count"] for b in details["reliability"]) == 300
    # the quick numbers training selects checkpoints by agree with the test report
    quick = quick_metrics(truth, probs, multi_label=False)
    assert quick == pytest.approx({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})


def test_bootstrap_is_seeded_and_narrows_with_more_rows():
    truth = np.random.default_rng(0).integers(0, 3, 2000)
    probs = noisy_probs(truth, 3, seed=1)
    big = evaluation_report(truth, probs, list("abc"), False, bootstrap=200, seed=7)["metrics"]
    again = evaluation_report(truth, probs, list("abc"), False, bootstrap=200, seed=7)["metrics"]
    small = evaluation_report(truth[:100], probs[:100], list("abc"), False, bootstrap=200, seed=7)["metrics"]
    assert big == again
    assert big["accuracy_ci_high"] - big["accuracy_ci_low"] < small["accuracy_ci_high"] - small["accuracy_ci_low"]
    none = evaluation_report(truth, probs, list("abc"), False, bootstrap=0)["metrics"]
    assert not any("_ci_" in key for key in none)


def test_multi_label_report_matches_sklearn():
    rng = np.random.default_rng(3)
    gold = (rng.random((200, 5)) < 0.3).astype(int)
    probs = np.clip(0.55 * gold + 0.6 * rng.random((200, 5)), 0, 1).astype(np.float32)
    report = evaluation_report(gold, probs, list("abcde"), multi_label=True, threshold=0.4)
    m, d = report["metrics"], report["details"]
    pred = (probs >= 0.4).astype(int)
    assert 0.05 < m["subset_accuracy"] < 0.95
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(gold, pred))
    assert m["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert m["threshold"] == pytest.approx(0.4)
    per = f1_score(gold, pred, average=None)
    assert [d["per_label"][n]["f1"] for n in "abcde"] == pytest.approx(per.tolist())
    at = {round(row["threshold"], 2): row for row in d["threshold_sweep"]}
    assert at[0.4]["micro_f1"] == pytest.approx(m["micro_f1"])
    assert at[0.7]["micro_f1"] == pytest.approx(f1_score(gold, probs >= 0.7, average="micro"))
    # label-id lists (as stored in shards) give the same report as multi-hot rows
    as_lists = [list(np.flatnonzero(row)) for row in gold]
    assert evaluation_report(as_lists, probs, list("abcde"), True, 0.4)["metrics"] == m


def test_metric_modules_load_offline_by_path_and_combine():
    import evaluate

    report = load_metric("classification_report")
    assert report.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"] == pytest.approx(2 / 3)
    combined = evaluate.combine([load_metric("probability_report")])
    out = combined.compute(prediction_scores=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1])
    assert out["roc_auc"] == 1.0
    with pytest.raises(ValueError, match="unknown metric module 'accuracy'.*classification_report"):
        load_metric("accuracy")


def test_multi_label_epochs_are_compared_at_the_threshold_they_would_be_saved_with():
    """An epoch that ranks every tag right with sigmoids still under 0.5 scores 0 at 0.5; selection
    scores it as it would serve, at the threshold fitted on validation."""
    truth = [[0], [1], [0, 1], []]
    probs = np.array([[0.3, 0.1], [0.1, 0.3], [0.3, 0.3], [0.1, 0.1]])
    assert quick_metrics(truth, probs, True)["micro_f1"] == 0.0
    fitted = validation_metrics(truth, probs, True)
    assert fitted["micro_f1"] == fitted["subset_accuracy"] == 1.0 and 0.1 < fitted["threshold"] <= 0.3
    single = noisy_probs(np.array([0, 1, 2, 1]), 3, seed=0)
    assert validation_metrics([0, 1, 2, 1], single, False) == quick_metrics([0, 1, 2, 1], single, False)
