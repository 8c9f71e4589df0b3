"""What the JSON API and the Gradio UI share: input limits, micro-batched prediction, the prediction
log (so feedback names the prediction it confirms or corrects, on any replica, after a restart),
attributions and the feedback store."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from textclf.config import ServeConfig
from textclf.errors import DataError
from textclf.model.attributions import token_attributions
from textclf.monitoring.feedback import append_feedback
from textclf.monitoring.predictions import PredictionLog, log_root, new_prediction_id, text_hash
from textclf.serve.batching import MicroBatcher
from textclf.serve.model_holder import ModelHolder, ServedModel
from textclf.serve.schemas import (
    BadInput,
    FeedbackResponse,
    Prediction,
    PredictResponse,
)


class Service:
    def __init__(self, holder: ModelHolder, cfg: ServeConfig):
        self.holder, self.cfg = holder, cfg
        self.batcher = MicroBatcher(lambda: holder.current, cfg.max_batch, cfg.batch_wait_ms)
        self.log = PredictionLog(log_root(cfg), cfg.log_texts)
        self._rng = np.random.default_rng()

    def start(self) -> None:
        self.batcher.start()
        self.holder.start()
        self.log.start()

    def stop(self) -> None:
        self.holder.stop()
        self.batcher.stop()
        self.log.close()

    # ---------------------------------------------------------------- prediction

    def check_texts(self, texts: str | list[str], field: str = "texts") -> list[str]:
        """The texts as a list, or BadInput naming the first one over a limit or not encodable
        (the API's schema refuses most of this first; the demo and feedback come through here)."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not items:
            raise BadInput([field], "give at least one text")
        if len(items) > self.cfg.max_texts:
            raise BadInput([field], f"at most {self.cfg.max_texts} texts per request, got {len(items)}")
        for i, text in enumerate(items):
            loc: list[str | int] = [field] if single else [field, i]
            if not isinstance(text, str):
                raise BadInput(loc, f"must be a string, not {type(text).__name__}")
            if not text.strip():
                raise BadInput(loc, "empty text")
            if len(text) > self.cfg.max_chars:
                raise BadInput(loc, f"{len(text)} characters; at most {self.cfg.max_chars} allowed")
            if "\x00" in text:
                raise BadInput(loc, "contains a NUL character")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate: valid JSON, not text a tokenizer takes
                raise BadInput(loc, f"not valid Unicode: a lone surrogate at character {exc.start}") from None
        return items

    async def predict(self, texts: str | list[str]) -> PredictResponse:
        items, start = self.check_texts(texts), time.perf_counter()
        served, probs = await asyncio.wrap_future(self.batcher.submit(items))
        return self._respond(items, served, probs, start)

    def predict_sync(self, texts: str | list[str]) -> PredictResponse:
        items, start = self.check_texts(texts), time.perf_counter()
        return self._respond(items, *self.batcher.submit(items).result(), start)

    def _respond(self, texts: list[str], served: ServedModel, probs: np.ndarray, start: float) -> PredictResponse:
        """The answer, and its rows in the prediction log (a `log_fraction` sample of them, of
        which a `review_fraction` sample is asked for review)."""
        predictor, info = served.predictor, served.info
        latency, now = (time.perf_counter() - start) * 1000, datetime.now(timezone.utc)
        logged = self._rng.random(len(texts)) < self.cfg.log_fraction
        sampled = logged & (self._rng.random(len(texts)) < self.cfg.review_fraction)
        predictions, rows = [], []
        for i, (text, label, row) in enumerate(zip(texts, predictor.decide(probs), probs)):
            pid = new_prediction_id(now)
            predictions.append(Prediction(prediction_id=pid, label=label, review_requested=bool(sampled[i]),
                                          probabilities=dict(zip(predictor.labels, map(float, row)))))
            if logged[i]:
                rows.append({"prediction_id": pid, "timestamp": now, "model_name": info.name,
                             "model_version": info.version, "text_hash": text_hash(text), "text": text,
                             "length": len(text), "predicted": label if isinstance(label, list) else [label],
                             "confidence": float(row.max()), "classes": predictor.labels,
                             "probabilities": row.tolist(), "latency_ms": latency, "sampled": bool(sampled[i])})
        self.log.record(rows)
        return PredictResponse(model=info.ref(), predictions=predictions)

    def explain(self, text: str) -> dict[str, Any]:
        """Token attributions for the predicted class, on the current model."""
        self.check_texts(text)
        served = self.holder.current
        with served.lock:  # its forward hook must not meet a batch's forward pass
            return token_attributions(served.predictor, text)

    # ---------------------------------------------------------------- feedback

    def feedback(self, text: str, labels: str | list[str], prediction_id: str | None = None) -> FeedbackResponse:
        """Store the right label(s) for a text. Tied to its prediction (a confirmation or a
        correction, with the version that made it) only when the id is in the prediction log and
        the text is the one it predicted; otherwise stored as a plain, unlinked label."""
        self.check_texts(text, "text")
        info = self.holder.current.info
        labels = [labels] if isinstance(labels, str) else list(labels)
        unknown = [label for label in labels if label not in info.labels]
        if not labels or unknown:
            raise BadInput(["labels"], f"{unknown or 'nothing'} given; choose from {info.labels}")
        if not info.multi_label and len(labels) != 1:
            raise BadInput(["labels"], f"this model gives one label per text, got {len(labels)}")
        logged = self.log.lookup(prediction_id) if prediction_id else None
        note = None
        if prediction_id and logged is None:
            note = "unknown prediction id: stored as a label not tied to a prediction"
        elif logged is not None and logged["text_hash"] != text_hash(text):
            logged, note = None, "the text differs from the one predicted: stored as a label not tied to a prediction"
        kind = "label" if logged is None else (
            "confirmation" if sorted(labels) == sorted(logged["predicted"]) else "correction")
        link, stamp = logged or {}, datetime.now(timezone.utc)
        try:
            append_feedback(self.cfg.feedback_root, [{
                "text": text, "labels": labels, "timestamp": stamp, "kind": kind, "linked": bool(link),
                "predicted": link.get("predicted"), "model_version": link.get("model_version"),
                "prediction_id": link.get("prediction_id"), "sampled": bool(link.get("sampled"))}])
        except DataError as exc:
            raise BadInput(["labels"], str(exc)) from None
        return FeedbackResponse(timestamp=stamp, kind=kind, linked=bool(link), note=note,
                                model_version=link.get("model_version"), prediction_id=link.get("prediction_id"))
