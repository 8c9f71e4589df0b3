"""Drift statistics between a reference and a current sample.

- labels: total variation distance between label shares;
- lengths and confidence: population stability index (PSI) over reference deciles, and the
  Kolmogorov-Smirnov two-sample p-value: PSI says how large a shift is, but on a few hundred rows
  it is noisy (under no shift its expectation is about (bins - 1) * (1/n + 1/m)), so a drift call
  needs both a large PSI and a significant test;
- meaning: the kernel two-sample test (squared MMD, RBF kernel with the median-distance
  bandwidth, permutation p-value) on sentence embeddings.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0.1 watch, 0.25 act)."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if len(reference) == 0 or len(current) == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_p(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (1.0 when either sample is empty)."""
    if len(reference) == 0 or len(current) == 0:
        return 1.0
    return float(ks_2samp(np.asarray(reference, float), np.asarray(current, float)).pvalue)


def label_shift(reference: dict[str, float], labels: list[list[str]]) -> float:
    """Total variation distance between reference and current label shares (0 same, 1 disjoint)."""
    flat = pd.Series([label for row in labels for label in row], dtype=object)
    current = flat.value_counts(normalize=True) if len(flat) else pd.Series(dtype=float)
    keys = set(reference) | set(current.index)
    return float(0.5 * sum(abs(reference.get(k, 0.0) - float(current.get(k, 0.0))) for k in keys))


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Squared MMD with an RBF kernel (median heuristic) and its permutation p-value."""
    if len(x) < 2 or len(y) < 2:
        return 0.0, 1.0
    z = np.concatenate([x, y]).astype(np.float64)
    sq = np.sum(z ** 2, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
    bandwidth = np.median(d2[np.triu_indices(len(z), 1)]) or 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(x)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        return k[np.ix_(a, a)].mean() + k[np.ix_(b, b)].mean() - 2 * k[np.ix_(a, b)].mean()

    observed = stat(np.arange(len(z)))
    rng = np.random.default_rng(seed)
    null = np.array([stat(rng.permutation(len(z))) for _ in range(permutations)])
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + permutations))
