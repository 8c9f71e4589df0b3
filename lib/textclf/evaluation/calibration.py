"""Temperature scaling (Guo et al., 2017): one number T > 0 that divides a single-label model's
logits before the softmax, fitted on the validation split by minimising the negative
log-likelihood. T > 1 softens an over-confident model, T < 1 sharpens a timid one; dividing by a
positive number keeps every row's order of classes, so argmax predictions do not change.

Where T lives and acts: `calibration_temperature` in the model folder's config.json (not
`temperature`: transformers refuses generation parameters in a model config), applied by the
network itself (`TextClassifier.forward` returns logits / T). So every scorer of a folder gets
the same calibrated probabilities without code of its own: `Predictor` (PyTorch, and the ONNX graphs
exported from the folder, which carry the division), serving, the MLflow pyfunc and a plain
transformers pipeline.

Multi-label models keep T = 1: each label is decided by a threshold tuned on the validation
probabilities, which a temperature would move (sigmoid(z / T) >= t is another cut for every T),
and the test report has no multi-label calibration measure to show a gain by.

ECE here is the test report's own (`probability_report`, 10 equal-width confidence bins), so
the validation numbers training records and the test numbers of the evaluate notebook compare.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from textclf.evaluation.metrics import load_metric

LOG_T_BOUNDS = (-3.0, 3.0)  # T from 0.05 to 20: wider only fits noise on a small validation split


def log_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Log class probabilities of logits / T, in float64 (the fit compares small likelihood steps)."""
    from scipy.special import log_softmax

    return log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def nll(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the gold classes under softmax(logits / T)."""
    return float(-np.mean(log_probs(logits, temperature)[np.arange(len(gold)), np.asarray(gold, dtype=np.int64)]))


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The T that minimises validation NLL; searched on log T, where the loss is smooth and T stays > 0.

    When every validation row is already right, the NLL keeps falling as T goes to 0 and has no
    minimum: the fit would make the model certain on the strength of a split it never missed
    (the toy sets do this). T then stays 1."""
    from scipy.optimize import minimize_scalar

    if np.array_equal(np.asarray(logits).argmax(1), np.asarray(gold)):
        return 1.0
    found = minimize_scalar(lambda log_t: nll(logits, gold, float(np.exp(log_t))), bounds=LOG_T_BOUNDS,
                            method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities at T = 1, from those at T: log softmax(z / T) is z / T less a per-row
    constant, and softmax ignores such constants, so softmax(T * log p) = softmax(z). Lets the
    test report show the calibration before scaling without scoring the split twice."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), np.finfo(np.float64).tiny, None))
    return np.exp(log_probs(logp, 1.0 / temperature))


def unscaled_ece(probs: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    """ECE at T = 1 of probabilities a folder's temperature scaled: what scaling changed, beside their own."""
    return reliability(uncalibrated(probs, temperature), gold)["ece"]


def reliability(probs: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """ECE and the reliability bins of single-label probabilities, as the test report computes them."""
    report = load_metric("probability_report").compute(prediction_scores=np.asarray(probs).tolist(),
                                                       references=np.asarray(gold).tolist())
    return {"ece": report["ece"], "reliability": report["reliability"]}


def calibrate(logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """T fitted on validation logits, and the validation ECE before (T = 1) and after: what the
    training record keeps, beside the T written into the model's config."""
    temperature = fit_temperature(logits, gold)
    return {"temperature": temperature,
            "val_ece_uncalibrated": reliability(np.exp(log_probs(logits)), gold)["ece"],
            "val_ece": reliability(np.exp(log_probs(logits, temperature)), gold)["ece"]}
