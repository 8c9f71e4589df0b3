"""Is the champion still fit for purpose? Performance on fresh labels, drift against the profile
of its training data, and age; the decision and the card that explains it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.cleaning import split_labels
from textclf.data.sources import Source, format_of, read_source
from textclf.evaluation.metrics import multi_hot, quick_metrics, resolve_metric
from textclf.model.predictor import Predictor
from textclf.monitoring.drift import label_shift, mmd_test, psi
from textclf.monitoring.profile import describe


@dataclass
class Assessment:
    n_fresh: int
    metrics: dict[str, float]
    drift: dict[str, float]
    age_days: float
    reasons: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        if self.retrain:
            return "retrain because " + "; ".join(self.reasons)
        return (f"keep the champion: {self.n_fresh} fresh labels, "
                + ", ".join(f"{k} {v:.3f}" for k, v in {**self.metrics, **self.drift}.items()))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "retrain": self.retrain, "summary": self.summary()}


def assess(mcfg, predictor: Predictor, profile: dict[str, Any], reference_vectors: np.ndarray,
           fresh: pd.DataFrame, model_created: datetime) -> tuple[Assessment, dict[str, Any]]:
    """Score fresh labelled rows (`text`, `labels` lists) against the thresholds in `monitor` config.

    Returns the assessment and the raw series the card plots (confidences and lengths)."""
    texts, labels = fresh["text"].tolist(), fresh["labels"].tolist()
    probs = predictor.predict_proba(texts)
    metrics: dict[str, float] = {}
    index = {label: i for i, label in enumerate(predictor.labels)}
    scorable = [i for i, row in enumerate(labels) if row and set(row) <= set(index)]  # a label it never learned: no score
    if len(scorable) >= mcfg.min_labels:
        gold = [[index[x] for x in labels[i]] for i in scorable]
        if predictor.multi_label:
            metrics = quick_metrics(multi_hot(gold, len(index)), probs[scorable], True, predictor.threshold)
        else:
            metrics = quick_metrics([row[0] for row in gold], probs[scorable], False)
    current, vectors = describe(predictor, texts, labels, max_embeddings=len(reference_vectors) or 256)
    mmd2, p_value = mmd_test(reference_vectors, vectors, permutations=mcfg.permutations)
    drift = {
        "label_shift_tv": label_shift(profile["label_shares"], labels),
        "length_psi": psi(profile["lengths"], current["lengths"]),
        "confidence_psi": psi(profile["confidence"], current["confidence"]),
        "embedding_mmd2": mmd2,
        "embedding_mmd_p": p_value,
    }
    age = (datetime.now(timezone.utc) - model_created).total_seconds() / 86400
    reasons = []
    metric = resolve_metric(mcfg.metric, predictor.multi_label)
    if metric in metrics and metrics[metric] < mcfg.min_metric:
        reasons.append(f"{metric} on {len(scorable)} fresh labels fell to {metrics[metric]:.2f} < {mcfg.min_metric:.2f}")
    if len(texts) >= mcfg.min_labels:
        for name, limit in (("label_shift_tv", mcfg.max_label_shift), ("length_psi", mcfg.max_psi),
                            ("confidence_psi", mcfg.max_psi)):
            if drift[name] > limit:
                reasons.append(f"{name} {drift[name]:.2f} > {limit:.2f}")
        if p_value < mcfg.mmd_alpha:
            reasons.append(f"embedding drift: MMD p-value {p_value:.3f} < {mcfg.mmd_alpha}")
    if mcfg.max_age_days and age > mcfg.max_age_days:
        reasons.append(f"the champion is {age:.0f} days old > {mcfg.max_age_days}")
    series = {"reference_confidence": profile["confidence"], "fresh_confidence": current["confidence"],
              "reference_lengths": profile["lengths"], "fresh_lengths": current["lengths"]}
    return Assessment(len(texts), metrics, drift, age, reasons), series


def fresh_labels(mcfg, data_cfg, feedback: pd.DataFrame) -> pd.DataFrame:
    """Recent feedback plus the optional labelled batch, as `text` + `labels` (lists) rows."""
    frames = []
    if not feedback.empty:
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=mcfg.window_days)
        recent = feedback[pd.to_datetime(feedback["timestamp"], utc=True) >= since]
        frames.append(recent.assign(origin="feedback"))
    if mcfg.batch:
        batch = read_source(Source(mcfg.batch, None, data_cfg.format or format_of(mcfg.batch)), data_cfg).compute()
        frames.append(pd.DataFrame({"text": batch["text"].astype(str),
                                    "labels": [split_labels(v, data_cfg) for v in batch["label"]],
                                    "origin": "batch"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["text", "labels", "origin"])


def drift_figure(series: dict[str, list[float]]):
    """Reference vs fresh: prediction confidence and token length, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, what, xlabel in ((axes[0], "confidence", "top-class probability"), (axes[1], "lengths", "tokens")):
        ref, cur = np.asarray(series[f"reference_{what}"]), np.asarray(series[f"fresh_{what}"])
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]) if len(cur) else ref, bins=20)
        ax.hist(ref, bins=bins, density=True, alpha=0.55, label=f"reference (n={len(ref)})")
        ax.hist(cur, bins=bins, density=True, alpha=0.55, label=f"fresh (n={len(cur)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(frameon=False)
    axes[0].set_title("Prediction confidence")
    axes[1].set_title("Text length")
    fig.tight_layout()
    return fig


def report_card(card, assessment: dict[str, Any], champion: dict[str, Any], figure) -> None:
    """The decision first, in one sentence; then the figures behind it."""
    from metaflow.cards import Image, Markdown, Table

    card.append(Markdown(f"# Monitor: {champion['name']} v{champion['version']}\n\n**{assessment['summary']}**"))
    card.append(Markdown(f"Fresh labelled rows: {assessment['n_fresh']} · champion age: "
                         f"{assessment['age_days']:.1f} days · from {champion['run_id']}"))
    rows = [[k, f"{v:.4f}"] for k, v in {**assessment["metrics"], **assessment["drift"]}.items()]
    card.append(Table(rows, headers=["figure", "value"]))
    card.append(Image.from_matplotlib(figure))
