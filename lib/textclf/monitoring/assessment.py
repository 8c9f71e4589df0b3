"""Is the champion still fit for purpose? Quality on an unbiased sample of fresh labels, drift of
the traffic it answered (the prediction log) against the profile of its training data, and age;
the decision and the card that explains it.

Quality is estimated only from labels that are a random sample: reviews of predictions the
server drew at random (`serve.review_fraction`) and the labelled batch. Corrections people chose
to send are a biased sample (mostly mistakes): they become training rows, never the estimate.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.cleaning import split_labels
from textclf.data.sources import Source, format_of, read_source
from textclf.evaluation.metrics import metric_interval, multi_hot, quick_metrics, resolve_metric
from textclf.model.predictor import Predictor
from textclf.monitoring.drift import ks_p, label_shift, mmd_test, psi


@dataclass
class Assessment:
    n_labels: int  # unbiased labels the quality estimate rests on
    n_traffic: int  # logged predictions drift was measured on
    metrics: dict[str, float]
    interval: dict[str, list[float]]  # the decision metric's 95 % bootstrap interval
    drift: dict[str, float]
    review: dict[str, float]  # predictions drawn for review, reviews received, response rate
    age_days: float
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        if self.retrain:
            return "retrain because " + "; ".join(self.reasons)
        figures = ", ".join(f"{k} {v:.3f}" for k, v in {**self.metrics, **self.drift}.items())
        return "keep the champion: " + "; ".join(self.notes + ([figures] if figures else []))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "retrain": self.retrain, "summary": self.summary()}


def quality(mcfg, predictor: Predictor, labelled: pd.DataFrame) -> tuple[dict[str, float], dict[str, list[float]], int]:
    """Metrics on the unbiased labelled rows the model can score, with the decision metric's interval."""
    index = {label: i for i, label in enumerate(predictor.labels)}
    rows = [(t, ls) for t, ls in zip(labelled["text"], labelled["labels"]) if ls and set(ls) <= set(index)]
    if len(rows) < mcfg.min_labels:
        return {}, {}, len(rows)
    probs = predictor.predict_proba([t for t, _ in rows])
    gold = [[index[x] for x in ls] for _, ls in rows]
    truth = multi_hot(gold, len(index)) if predictor.multi_label else np.array([g[0] for g in gold])
    metric = resolve_metric(mcfg.metric, predictor.multi_label)
    metrics = quick_metrics(truth, probs, predictor.multi_label, predictor.threshold)
    interval = metric_interval(truth, probs, predictor.multi_label, metric, predictor.threshold)
    return metrics, {metric: list(interval)}, len(rows)


def traffic_drift(predictor: Predictor, profile: dict[str, Any], reference_vectors: np.ndarray,
                  traffic: pd.DataFrame, permutations: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Drift of logged traffic from the training profile, re-scored by this model (the log may
    hold several versions' answers): label shares, confidence, token length, embedding MMD. With
    texts not logged (`serve.log_texts=false`), only what the log holds: label shares and confidence."""
    texts = [t for t in traffic["text"] if isinstance(t, str)]
    if len(texts) == len(traffic) and texts:
        ids = predictor.encode(texts)  # tokenized once: the scores and the lengths come from the same ids
        probs = predictor.probs_from_ids(ids)
        predicted = [ls if isinstance(ls, list) else [ls] for ls in predictor.decide(probs)]
        confidence, lengths = probs.max(1), [len(x) for x in ids]
        mmd2, p_value = mmd_test(reference_vectors, predictor.embed(texts[-(len(reference_vectors) or 256):]),
                                 permutations=permutations)
        drift = {"length_psi": psi(profile["lengths"], lengths), "length_ks_p": ks_p(profile["lengths"], lengths),
                 "embedding_mmd2": mmd2, "embedding_mmd_p": p_value}
    else:
        predicted, confidence, lengths = [list(p) for p in traffic["predicted"]], traffic["confidence"].to_numpy(), []
        drift = {}
    drift = {"label_shift_tv": label_shift(profile["label_shares"], predicted),
             "confidence_psi": psi(profile["confidence"], confidence),
             "confidence_ks_p": ks_p(profile["confidence"], confidence), **drift}
    return drift, {"fresh_confidence": np.asarray(confidence, float).tolist(), "fresh_lengths": lengths}


def assess(mcfg, predictor: Predictor, profile: dict[str, Any], reference_vectors: np.ndarray,
           labelled: pd.DataFrame, traffic: pd.DataFrame, review: dict[str, float],
           model_created: datetime) -> tuple[Assessment, dict[str, Any]]:
    """Judge the champion by the thresholds in `monitor` config. `labelled`: unbiased rows (`text`,
    `labels` lists); `traffic`: logged predictions of the window. Returns the assessment and the
    series the card plots."""
    metrics, interval, n_labels = quality(mcfg, predictor, labelled)
    drift, series = {}, {"fresh_confidence": [], "fresh_lengths": []}
    if len(traffic) >= mcfg.min_predictions:
        drift, series = traffic_drift(predictor, profile, reference_vectors, traffic, mcfg.permutations)
    age = (datetime.now(timezone.utc) - model_created).total_seconds() / 86400
    notes, reasons = [], []
    if not metrics and not drift:
        notes.append(f"nothing fresh to assess ({n_labels} unbiased labels, {len(traffic)} logged predictions in the "
                     f"last {mcfg.window_days:g} days; a verdict needs {mcfg.min_labels} or {mcfg.min_predictions})")
    for metric, (low, high) in interval.items():
        if high < mcfg.min_metric:
            reasons.append(f"{metric} on {n_labels} unbiased fresh labels is {metrics[metric]:.2f} "
                           f"(95 % interval {low:.2f}-{high:.2f}), below {mcfg.min_metric:.2f}")
    if drift.get("label_shift_tv", 0.0) > mcfg.max_label_shift:
        reasons.append(f"traffic drift: label_shift_tv {drift['label_shift_tv']:.2f} > {mcfg.max_label_shift:.2f}")
    for name in ("length", "confidence"):
        if drift.get(f"{name}_psi", 0.0) > mcfg.max_psi and drift[f"{name}_ks_p"] < mcfg.drift_alpha:
            reasons.append(f"traffic drift: {name}_psi {drift[f'{name}_psi']:.2f} > {mcfg.max_psi:.2f} "
                           f"(KS p-value {drift[f'{name}_ks_p']:.3g})")
    if drift.get("embedding_mmd_p", 1.0) < mcfg.mmd_alpha:
        reasons.append(f"traffic drift: embedding MMD p-value {drift['embedding_mmd_p']:.3f} < {mcfg.mmd_alpha}")
    if mcfg.max_age_days and age > mcfg.max_age_days:
        reasons.append(f"the champion is {age:.0f} days old > {mcfg.max_age_days}")
    series.update(reference_confidence=profile["confidence"], reference_lengths=profile["lengths"])
    return Assessment(n_labels, len(traffic), metrics, interval, drift, review, age, notes, reasons), series


def fresh_labels(mcfg, data_cfg, feedback: pd.DataFrame) -> pd.DataFrame:
    """Recent feedback plus the optional labelled batch, as `text` + `labels` (lists) rows;
    `unbiased` marks the rows quality may be estimated from (reviews of randomly sampled
    predictions, and the batch). All of them can become training rows."""
    frames = []
    if not feedback.empty:
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=mcfg.window_days)
        recent = feedback[pd.to_datetime(feedback["timestamp"], utc=True) >= since]
        frames.append(recent.assign(origin="feedback", unbiased=recent["linked"] & recent["sampled"]))
    if mcfg.batch:
        batch = read_source(Source(mcfg.batch, None, data_cfg.format or format_of(mcfg.batch)), data_cfg).compute()
        frames.append(pd.DataFrame({"text": batch["text"].astype(str),
                                    "labels": [split_labels(v, data_cfg) for v in batch["label"]],
                                    "origin": "batch", "unbiased": True}))
    empty = pd.DataFrame({"text": [], "labels": [], "origin": [], "unbiased": pd.Series(dtype=bool)})
    return pd.concat(frames, ignore_index=True) if frames else empty


def review_rate(traffic: pd.DataFrame, fresh: pd.DataFrame) -> dict[str, float]:
    """How many predictions of the window were drawn for review and how many got one: a low
    response rate means the unbiased sample may still be biased by who answers."""
    drawn = int(traffic["sampled"].sum()) if len(traffic) else 0
    answered = int((fresh["origin"].eq("feedback") & fresh["unbiased"]).sum()) if len(fresh) else 0
    return {"drawn": drawn, "answered": answered, "response_rate": answered / drawn if drawn else 0.0}


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

    review = assessment["review"]
    card.append(Markdown(f"# Monitor: {champion['name']} v{champion['version']}\n\n**{assessment['summary']}**"))
    card.append(Markdown(
        f"Quality from **{assessment['n_labels']} unbiased labels** (reviews of predictions drawn at random: "
        f"{review['answered']} of {review['drawn']} answered, {review['response_rate']:.0%}; and the labelled batch). "
        f"Corrections users chose to send are training rows, not the estimate. Drift from **{assessment['n_traffic']} "
        f"logged predictions**. Champion age: {assessment['age_days']:.1f} days · from {champion['run_id']}"))
    interval = assessment["interval"]
    rows = [[k, f"{v:.4f}", "{:.4f}-{:.4f}".format(*interval[k]) if k in interval else ""]
            for k, v in {**assessment["metrics"], **assessment["drift"]}.items()]
    if rows:
        card.append(Table(rows, headers=["figure", "value", "95 % interval"]))
    card.append(Image.from_matplotlib(figure))
