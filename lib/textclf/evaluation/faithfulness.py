"""How far to trust token attributions: do they agree with what removing words does to the model?

Three measures, on words (a word's pieces are scored and removed together, as the demo shows them):
- deletion sign agreement: a word scored as pushing the target up should lower the target's
  probability when it is removed, and the reverse (chance is about 0.5). The weighted variant
  counts each word by how much its removal moves the probability, so the words that matter
  count most.
- comprehensiveness (ERASER, DeYoung et al. 2020): p(text) - p(text without its top-k% words),
  averaged over k in 1, 5, 10, 20, 50 %; higher is better.
- sufficiency (ERASER): p(text) - p(its top-k% words alone), averaged the same way; lower is better.
Removing a word drops its token ids ([CLS]/[SEP] stay): the model sees a shorter text, not a
placeholder. Probabilities come from the predictor itself, so ONNX variants are measured as served.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from textclf.model.attributions import IG_STEPS, split_words, token_attributions

FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)  # ERASER's bins


@dataclass(frozen=True)
class TextFaithfulness:
    """One explained text: per-word scores and removal effects, and its ERASER figures."""

    scores: np.ndarray
    deltas: np.ndarray  # p(text) - p(text without the word), for each word
    comprehensiveness: float
    sufficiency: float


def _keep(ids: np.ndarray, positions: list[list[int]], dropped: Iterable[int]) -> np.ndarray:
    gone = {p for w in dropped for p in positions[w]}
    return np.asarray([t for i, t in enumerate(ids) if i not in gone], dtype=np.int64)


def measure_text(predictor, text: str, attribution: dict) -> TextFaithfulness:
    """Remove each word alone, then the top-k% words, then all but them, in one batched pass."""
    words = split_words(predictor, text)
    scores = words.scores(attribution["scores"])
    n = len(scores)
    cls = predictor.labels.index(attribution["label"])
    ranked = np.argsort(-scores, kind="stable")
    tops = [ranked[:math.ceil(f * n)] for f in FRACTIONS]
    variants = [words.ids] + [_keep(words.ids, words.positions, [w]) for w in range(n)]
    variants += [_keep(words.ids, words.positions, top) for top in tops]
    variants += [_keep(words.ids, words.positions, np.setdiff1d(ranked, top)) for top in tops]
    p = predictor.probs_from_ids(variants)[:, cls]
    k = len(tops)
    return TextFaithfulness(scores=scores, deltas=p[0] - p[1:1 + n],
                            comprehensiveness=float(np.mean(p[0] - p[1 + n:1 + n + k])),
                            sufficiency=float(np.mean(p[0] - p[1 + n + k:])))


def summarize(measured: list[TextFaithfulness]) -> dict[str, float]:
    """Sign agreement pooled over all words; comprehensiveness and sufficiency averaged over texts."""
    scores = np.concatenate([m.scores for m in measured]) if measured else np.zeros(0)
    deltas = np.concatenate([m.deltas for m in measured]) if measured else np.zeros(0)
    agree = np.sign(scores) == np.sign(deltas)
    weight = np.abs(deltas).sum()
    return {"texts": len(measured), "words": int(len(scores)),
            "sign_agreement": float(agree.mean()) if len(agree) else float("nan"),
            "sign_agreement_weighted": float((np.abs(deltas) * agree).sum() / weight) if weight else float("nan"),
            "comprehensiveness": float(np.mean([m.comprehensiveness for m in measured])) if measured else float("nan"),
            "sufficiency": float(np.mean([m.sufficiency for m in measured])) if measured else float("nan")}


def faithfulness(predictor, texts: Iterable[str], method: str = "integrated_gradients",
                 steps: int = IG_STEPS) -> dict[str, float]:
    """The three measures of `method` on `texts` (for the predicted label), and its cost per text."""
    measured, seconds, timed = [], 0.0, 0
    for timed, text in enumerate(texts, 1):
        start = time.perf_counter()
        attribution = token_attributions(predictor, text, method=method, steps=steps)
        seconds += time.perf_counter() - start
        if attribution["words"]:
            measured.append(measure_text(predictor, text, attribution))
    summary = summarize(measured)
    return {"method": method, **summary, "ms_per_text": round(1000 * seconds / max(timed, 1), 1)}
