"""Figures for the evaluation notebooks: what people would rather look at than read.

Every function returns a `matplotlib.figure.Figure` built without pyplot (no global state, no
GUI backend); Jupyter displays a Figure that ends a cell, and `fig.savefig` writes it anywhere.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve, roc_curve

WRONG, RIGHT = "#d62728", "#2ca02c"


def _short(labels: Sequence[str], width: int = 18) -> list[str]:
    return [s if len(s) <= width else s[:width - 1] + "…" for s in map(str, labels)]


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> Figure:
    """Counts, coloured by the share of each gold row (so rare classes stay readable)."""
    cm = np.asarray(matrix, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(labels)
    size = max(4.5, 0.6 * k + 2.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = _short(labels)
    ax.set_xticks(range(k), names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix (colour: share of the gold row)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of gold row")
    return fig


def roc_pr_curves(truth: np.ndarray, probs: np.ndarray, labels: Sequence[str], per_class: dict[str, Any]) -> Figure:
    """ROC and precision-recall curves, one-vs-rest (binary: the positive class only).

    Legends quote the AUCs from the metrics report, so the picture and the numbers agree.
    """
    truth = np.asarray(truth)
    onehot = truth if truth.ndim == 2 else np.eye(len(labels), dtype=int)[truth]
    shown = [1] if len(labels) == 2 and truth.ndim == 1 else range(len(labels))
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    for j in shown:
        y = onehot[:, j]
        if 0 < y.sum() < len(y):
            name = _short([labels[j]])[0]
            stats = per_class.get(labels[j], {})
            fpr, tpr, _ = roc_curve(y, probs[:, j])
            roc_ax.plot(fpr, tpr, label=f"{name} (AUC {stats.get('roc_auc', float('nan')):.3f})")
            precision, recall, _ = precision_recall_curve(y, probs[:, j])
            pr_ax.plot(recall, precision, label=f"{name} (AP {stats.get('pr_auc', float('nan')):.3f})")
    roc_ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one-vs-rest)",
               xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (one-vs-rest)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right" if ax is roc_ax else "lower left", fontsize=8)
    return fig


def reliability_diagram(bins: list[dict[str, Any]], ece: float) -> Figure:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, bin counts."""
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax, count_ax = fig.subplots(1, 2, width_ratios=[3, 2])
    lows = np.array([b["low"] for b in bins])
    width = np.array([b["high"] - b["low"] for b in bins])
    acc = np.array([b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins])
    conf = np.array([b["confidence"] if b["confidence"] is not None else np.nan for b in bins])
    counts = np.array([b["count"] for b in bins])
    ax.bar(lows, acc, width=width, align="edge", color="#1f77b4", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    ax.scatter(conf, acc, color="black", s=12, zorder=3, label="a bin's accuracy at its mean confidence")
    ax.set(xlabel="confidence (top-class probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Reliability diagram (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    count_ax.bar(lows, counts, width=width, align="edge", color="#7f7f7f", edgecolor="white")
    count_ax.set(xlabel="confidence", ylabel="rows", xlim=(0, 1), title="Rows per confidence bin")
    return fig


def learning_curves(records: list[dict[str, Any]]) -> Figure:
    """Training loss (per logged step and per epoch) and the validation metrics per epoch."""
    steps = pd.DataFrame([r for r in records if r.get("kind") == "step"])
    epochs = pd.DataFrame([r for r in records if r.get("kind") == "epoch"])
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    if not steps.empty:
        loss_ax.plot(steps["epoch"], steps["loss"], color="#1f77b4", alpha=0.7, label="train loss (10-step mean)")
    if not epochs.empty:
        loss_ax.plot(epochs["epoch"], epochs["train_loss"], "o-", color="#ff7f0e", label="train loss (epoch mean)")
        columns = sorted(c for c in epochs.columns if c.startswith("val_"))
        for column, marker, dash in zip(columns, "osD^v", ("-", "--", ":", "-.", "-")):  # close curves stay apart
            val_ax.plot(epochs["epoch"], epochs[column], marker=marker, linestyle=dash, fillstyle="none", label=column)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Training loss")
    val_ax.set(xlabel="epoch", ylabel="score", title="Validation metrics per epoch")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no training log", ha="center", va="center", transform=ax.transAxes)
    return fig


def confidence_histogram(confidence: np.ndarray, correct: np.ndarray) -> Figure:
    """How sure the model was when it was right and when it was wrong."""
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    edges = np.linspace(0, 1, 21)
    correct = np.asarray(correct, dtype=bool)
    ax.hist(np.asarray(confidence)[correct], bins=edges, alpha=0.7, color=RIGHT, label=f"right ({correct.sum()})")
    ax.hist(np.asarray(confidence)[~correct], bins=edges, alpha=0.7, color=WRONG, label=f"wrong ({(~correct).sum()})")
    ax.set(xlabel="confidence", ylabel="rows", title="Confidence: right vs wrong", xlim=(0, 1))
    ax.legend()
    return fig


def slice_bars(table: pd.DataFrame, metric: str, overall: float) -> Figure:
    """One bar per slice (with its row count), against the whole test split."""
    table = table.sort_values(metric)
    fig = Figure(figsize=(8, 0.42 * len(table) + 1.6), layout="constrained")
    ax = fig.subplots()
    colors = [WRONG if v < overall else "#1f77b4" for v in table[metric]]
    bars = ax.barh(table["slice"], table[metric], color=colors)
    for bar, n in zip(bars, table["n"]):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"n={n}", va="center", fontsize=8)
    ax.axvline(overall, ls="--", color="black", label=f"all rows ({overall:.3f})")
    ax.set(xlim=(0, 1.12), xlabel=metric, title=f"{metric} per slice (red: below all rows)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def per_label_bars(per_label: dict[str, dict[str, float]]) -> Figure:
    """Precision, recall and F1 of each label (multi-label), with its support."""
    names = list(per_label)
    y = np.arange(len(names))
    fig = Figure(figsize=(8, 0.5 * len(names) + 1.6), layout="constrained")
    ax = fig.subplots()
    for offset, key, color in ((-0.27, "precision", "#1f77b4"), (0, "recall", "#ff7f0e"), (0.27, "f1", "#2ca02c")):
        ax.barh(y + offset, [per_label[n][key] for n in names], height=0.27, label=key, color=color)
    ax.set_yticks(y, [f"{n} (n={per_label[n]['support']})" for n in _short(names)])
    ax.set(xlim=(0, 1.02), xlabel="score", title="Per-label precision / recall / F1")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def threshold_sweep(sweep: list[dict[str, float]], chosen: float) -> Figure:
    """Micro/macro F1 and subset accuracy as the decision threshold moves (multi-label)."""
    frame = pd.DataFrame(sweep)
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    for column in ("micro_f1", "macro_f1", "subset_accuracy"):
        ax.plot(frame["threshold"], frame[column], "o-", ms=3, label=column)
    ax.axvline(chosen, ls="--", color="grey", label=f"model threshold {chosen:.2f}")
    ax.set(xlabel="threshold", ylabel="score", ylim=(0, 1.02), title="Threshold sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def class_balance(counts: pd.DataFrame) -> Figure:
    """Rows per class (rows) in each split (columns), as grouped bars."""
    fig = Figure(figsize=(8, 0.45 * len(counts) * max(1, counts.shape[1] / 2) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(counts))
    height = 0.8 / max(counts.shape[1], 1)
    for i, split in enumerate(counts.columns):
        ax.barh(y + i * height, counts[split], height=height, label=split)
    ax.set_yticks(y + height * (counts.shape[1] - 1) / 2, _short(counts.index))
    ax.set(xlabel="rows", title="Class balance per split")
    ax.legend(fontsize=8)
    return fig


def length_histograms(lengths: dict[str, np.ndarray], unit: str, limit: int | None = None) -> Figure:
    """Length distributions per group (split or class), with an optional truncation line."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    top = max((int(np.max(v)) for v in lengths.values() if len(v)), default=1)
    right = max(top, limit or 0) + 1
    edges = np.arange(right + 1) - 0.5 if right <= 60 else np.linspace(0, right, 40)  # whole units when few
    for name, values in lengths.items():
        ax.hist(values, bins=edges, alpha=0.5, label=f"{name} (median {np.median(values):.0f})" if len(values) else name)
    if limit:
        ax.axvline(limit, ls="--", color="black", label=f"max_length {limit}")
    ax.set(xlabel=unit, ylabel="rows", title=f"Length in {unit}")
    ax.legend(fontsize=8)
    return fig


def token_heatmap_html(attribution: dict[str, Any]) -> str:
    """Words shaded by attribution (green: towards the label, red: against), as inline HTML."""
    words = [word for word, _ in attribution["words"]]
    scores = np.asarray([score for _, score in attribution["words"]], dtype=float)
    peak = float(np.abs(scores).max(initial=0.0)) or 1.0
    spans = []
    for word, score in zip(words, scores):
        alpha = abs(score) / peak
        rgb = "44,160,44" if score >= 0 else "214,39,40"
        spans.append(f'<span title="{score:+.4f}" style="background:rgba({rgb},{alpha:.2f});padding:1px 2px;'
                     f'margin:1px;border-radius:3px;display:inline-block">{html.escape(word)}</span>')
    head = (f"<b>{html.escape(str(attribution['label']))}</b> "
            f"(p={attribution['probability']:.3f}): ")
    return f'<div style="line-height:1.9;font-family:monospace">{head}{"".join(spans)}</div>'
