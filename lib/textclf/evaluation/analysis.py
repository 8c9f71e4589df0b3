"""Error analysis of a scored test split: where the model is wrong, how sure it was, and where it
confidently disagrees with the gold label. Used by notebooks/error_analysis.ipynb and explore_data.ipynb.
"""
from __future__ import annotations

import importlib
import re
from collections import Counter
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from textclf.errors import TextclfError
from textclf.evaluation.metrics import quick_metrics
from textclf.evaluation.scoring import Scored

SliceFn = Callable[[str], bool]

NEGATION = re.compile(r"\b(?:not|no|never|nothing|nobody|none|neither|nor|cannot|without)\b|n't\b", re.IGNORECASE)
URL = re.compile(r"https?://\S+|\bwww\.\S+", re.IGNORECASE)
MENTION = re.compile(r"(?<![\w@])@\w+")
LENGTH_BUCKETS = ((0, 5), (6, 15), (16, 30), (31, None))  # words, inclusive


COUNT_COLUMNS = ("n", "support", "count", "rows")


def readable(frame: pd.DataFrame) -> Any:
    """A table as a person reads it: lists as "a, b", counts without ".0", text left-aligned."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            joiner = " · " if column == "examples" else ", "
            shown[column] = shown[column].map(
                lambda v: joiner.join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
    for column in COUNT_COLUMNS:
        if column in shown and shown[column].notna().all():
            shown[column] = shown[column].astype(int)
    text = [c for c in shown.columns if shown[c].dtype == object or pd.api.types.is_string_dtype(shown[c])]
    return shown.style.format(precision=4).set_properties(subset=text, **{"text-align": "left"})


def words(text: str) -> int:
    return len(text.split())


def predictions_frame(scored: Scored) -> pd.DataFrame:
    """One row per test example: text, gold, predicted, confidence, correct (+ p_gold, single-label).

    Multi-label: gold/predicted are label lists, `correct` is an exact match, `confidence` the
    mean certainty over labels, and `mistake_confidence` how sure the worst wrong decision was.
    """
    labels = np.asarray(scored.labels, dtype=object)
    if scored.multi_label:
        decided = scored.predicted.astype(bool)
        gold = scored.truth.astype(bool)
        certainty = np.where(decided, scored.probs, 1 - scored.probs)
        wrong = decided != gold
        return pd.DataFrame({
            "text": scored.texts,
            "gold": [list(labels[g]) for g in gold],
            "predicted": [list(labels[d]) for d in decided],
            "confidence": certainty.mean(1),
            "correct": ~wrong.any(1),
            "mistake_confidence": np.where(wrong, certainty, 0).max(1),
            "words": [words(t) for t in scored.texts]})
    gold = np.asarray(scored.truth)
    pred = scored.predicted
    return pd.DataFrame({
        "text": scored.texts, "gold": labels[gold], "predicted": labels[pred],
        "confidence": scored.probs.max(1), "p_gold": scored.probs[np.arange(len(gold)), gold],
        "correct": pred == gold, "words": [words(t) for t in scored.texts]})


def confident_mistakes(frame: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k wrong predictions the model was surest of."""
    key = "mistake_confidence" if "mistake_confidence" in frame else "confidence"
    return frame[~frame["correct"]].sort_values(key, ascending=False).head(k)


def confusion_pairs(frame: pd.DataFrame, k: int = 5, examples: int = 3) -> pd.DataFrame:
    """The k most frequent (gold -> predicted) confusions with example texts.

    Multi-label: a pair is a gold label the model missed and a label it added instead on the
    same row; "(none)" stands for a miss or an addition alone.
    """
    found: dict[tuple[str, str], list[str]] = {}
    for row in frame[~frame["correct"]].itertuples():
        if isinstance(row.gold, list):
            missed = [g for g in row.gold if g not in row.predicted] or ["(none)"]
            added = [p for p in row.predicted if p not in row.gold] or ["(none)"]
            pairs = [(m, a) for m in missed for a in added]
        else:
            pairs = [(row.gold, row.predicted)]
        for pair in pairs:
            found.setdefault(pair, []).append(row.text)
    counts = Counter({pair: len(texts) for pair, texts in found.items()})
    return pd.DataFrame([{"gold": g, "predicted": p, "count": n, "examples": found[(g, p)][:examples]}
                         for (g, p), n in counts.most_common(k)], columns=["gold", "predicted", "count", "examples"])


def default_slices() -> dict[str, SliceFn]:
    """Length buckets (words), negation, URLs and @mentions."""
    slices: dict[str, SliceFn] = {}
    for low, high in LENGTH_BUCKETS:
        name = f"{low}-{high} words" if high is not None else f">{low - 1} words"
        slices[name] = (lambda t, lo=low, hi=high: lo <= words(t) and (hi is None or words(t) <= hi))
    slices["negation"] = lambda t: bool(NEGATION.search(t))
    slices["has URL"] = lambda t: bool(URL.search(t))
    slices["has @mention"] = lambda t: bool(MENTION.search(t))
    return slices


def load_slicing_functions(spec: str | None) -> dict[str, SliceFn]:
    """User slices from `"package.module:NAME"`: a dict name -> fn(text) -> bool, or a callable returning one."""
    if not spec:
        return {}
    module_name, _, attr = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr or "SLICES")
    except (ImportError, AttributeError) as err:
        raise TextclfError(f"slicing_functions={spec!r}: {err}") from None
    found = found() if callable(found) and not isinstance(found, Mapping) else found
    if not isinstance(found, Mapping) or not all(callable(f) for f in found.values()):
        raise TextclfError(f"slicing_functions={spec!r} must name a dict of name -> function(text) -> bool")
    return dict(found)


def pattern_slices(patterns: Mapping[str, str]) -> dict[str, SliceFn]:
    """Slices from regular expressions (case-insensitive), e.g. {"mentions refund": "refund"}."""
    out = {}
    for name, pattern in patterns.items():
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise TextclfError(f"slice {name!r}: bad pattern {pattern!r}: {err}") from None
        out[name] = lambda t, c=compiled: bool(c.search(t))
    return out


def slice_metrics(scored: Scored, slices: Mapping[str, SliceFn]) -> pd.DataFrame:
    """Rows, share and metrics (accuracy / macro F1, or subset accuracy / micro F1) per slice."""
    rows = []
    for name, fn in slices.items():
        try:
            member = np.array([bool(fn(t)) for t in scored.texts], dtype=bool)
        except Exception as err:  # a user's slicing function: say which one broke
            raise TextclfError(f"slice {name!r} failed: {type(err).__name__}: {err}") from None
        if not member.any():
            rows.append({"slice": name, "n": 0, "share": 0.0})
            continue
        truth = scored.truth[member]
        rows.append({"slice": name, "n": int(member.sum()), "share": float(member.mean()),
                     **quick_metrics(truth, scored.probs[member], scored.multi_label, scored.threshold)})
    return pd.DataFrame(rows)


def confident_disagreements(scored: Scored, k: int = 10) -> pd.DataFrame:
    """Rows whose gold label the model confidently disagrees with, by confident learning's rule.

    Not a list of wrong labels: one model's disagreement is as often its own mistake (sarcasm,
    negation) as a bad label, so these are rows for a person to read, not to relabel blindly.

    A class's threshold is the model's mean probability for it on rows labelled with it; a row
    is suspect when another class clears its threshold and beats the gold class. Multi-label:
    a gold-negative label scoring above the label's mean on its positives ("+label": maybe
    missing), or a gold-positive one below its mean on negatives ("-label": maybe wrong).
    """
    probs, labels = scored.probs, scored.labels
    if scored.multi_label:
        gold = scored.truth.astype(bool)
        pos = np.array([probs[gold[:, j], j].mean() if gold[:, j].any() else 1.0 for j in range(len(labels))])
        neg = np.array([probs[~gold[:, j], j].mean() if (~gold[:, j]).any() else 0.0 for j in range(len(labels))])
        add = ~gold & (probs >= pos) & (probs >= scored.threshold)
        drop = gold & (probs <= neg) & (probs < scored.threshold)
        margin = np.where(add, probs - scored.threshold, 0).max(1) + np.where(drop, scored.threshold - probs, 0).max(1)
        rows = [{"text": scored.texts[i], "gold": [labels[j] for j in np.flatnonzero(gold[i])],
                 "suspect": [f"+{labels[j]}" for j in np.flatnonzero(add[i])]
                 + [f"-{labels[j]}" for j in np.flatnonzero(drop[i])], "margin": float(margin[i])}
                for i in np.flatnonzero(add.any(1) | drop.any(1))]
        return pd.DataFrame(rows, columns=["text", "gold", "suspect", "margin"]).sort_values(
            "margin", ascending=False).head(k)
    gold = np.asarray(scored.truth)
    thresholds = np.array([probs[gold == j, j].mean() if (gold == j).any() else 1.0 for j in range(len(labels))])
    p_gold = probs[np.arange(len(gold)), gold]
    rival = np.where(probs >= thresholds, probs, -1.0)
    rival[np.arange(len(gold)), gold] = -1.0
    suggested = rival.argmax(1)
    p_suggested = rival[np.arange(len(gold)), suggested]
    suspect = p_suggested > p_gold
    frame = pd.DataFrame({"text": scored.texts, "gold": np.asarray(labels, dtype=object)[gold],
                          "suggested": np.asarray(labels, dtype=object)[suggested],
                          "p_gold": p_gold, "p_suggested": p_suggested, "margin": p_suggested - p_gold})
    return frame[suspect].sort_values("margin", ascending=False).head(k)


def attribution_rows(frame: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Rows worth explaining: the surest mistakes, then the surest right answers if too few."""
    mistakes = confident_mistakes(frame, k)
    right = frame[frame["correct"]].sort_values("confidence", ascending=False).head(k - len(mistakes))
    return pd.concat([mistakes, right])


# --------------------------------------------------------------------------- data exploration

def class_counts(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """Rows per class (index) and split (columns) from a preprocessing manifest."""
    return pd.DataFrame({split: info["classes"] for split, info in manifest["splits"].items()}).fillna(0).astype(int)


def cleaning_summary(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """What preprocessing read, dropped (bad rows, exact and normalised duplicates) and kept."""
    keys = ("rows_read", "bad_rows", "duplicates_exact", "duplicates_normalized", "rows_kept")
    return pd.DataFrame([{"step": key.replace("_", " "), "rows": int(manifest.get(key) or 0)} for key in keys])


def examples_per_class(frame: pd.DataFrame, labels: list[str], k: int = 3, seed: int = 0) -> pd.DataFrame:
    """k random texts of each class from a split frame (columns text, label as ids or id lists)."""
    rows = []
    for j, name in enumerate(labels):
        member = frame["label"].map(lambda v, j=j: j in v if isinstance(v, (list, np.ndarray)) else v == j)
        chosen = frame[member.to_numpy(dtype=bool)]
        for text in chosen.sample(min(k, len(chosen)), random_state=seed)["text"]:
            rows.append({"class": name, "text": text})
    return pd.DataFrame(rows, columns=["class", "text"])
