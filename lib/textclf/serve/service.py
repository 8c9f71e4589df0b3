"""What the JSON API and the Gradio UI share: input limits, micro-batched prediction, prediction
ids (so feedback can name the version it corrects), attributions and the feedback store."""
from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import numpy as np

from textclf.config import ServeConfig
from textclf.errors import DataError
from textclf.model.attributions import token_attributions
from textclf.monitoring.feedback import append_feedback
from textclf.serve.batching import MicroBatcher
from textclf.serve.model_holder import ModelHolder, ServedModel
from textclf.serve.schemas import (
    BadInput,
    FeedbackResponse,
    Prediction,
    PredictResponse,
)

REMEMBERED_PREDICTIONS = 10_000


class Service:
    def __init__(self, holder: ModelHolder, cfg: ServeConfig):
        self.holder, self.cfg = holder, cfg
        self.batcher = MicroBatcher(lambda: holder.current, cfg.max_batch, cfg.batch_wait_ms)
        self._recent: OrderedDict[str, tuple[str | None, list[str]]] = OrderedDict()
        self._recent_lock = threading.Lock()

    def start(self) -> None:
        self.batcher.start()
        self.holder.start()

    def stop(self) -> None:
        self.holder.stop()
        self.batcher.stop()

    # ---------------------------------------------------------------- prediction

    def check_texts(self, texts: str | list[str]) -> list[str]:
        """The texts as a list, or BadInput naming the first one over a limit."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not items:
            raise BadInput(["texts"], "give at least one text")
        if len(items) > self.cfg.max_texts:
            raise BadInput(["texts"], f"at most {self.cfg.max_texts} texts per request, got {len(items)}")
        for i, text in enumerate(items):
            loc: list[str | int] = ["texts"] if single else ["texts", i]
            if not isinstance(text, str):
                raise BadInput(loc, f"must be a string, not {type(text).__name__}")
            if not text.strip():
                raise BadInput(loc, "empty text")
            if len(text) > self.cfg.max_chars:
                raise BadInput(loc, f"{len(text)} characters; at most {self.cfg.max_chars} allowed")
        return items

    async def predict(self, texts: str | list[str]) -> PredictResponse:
        served, probs = await asyncio.wrap_future(self.batcher.submit(self.check_texts(texts)))
        return self._respond(served, probs)

    def predict_sync(self, texts: str | list[str]) -> PredictResponse:
        return self._respond(*self.batcher.submit(self.check_texts(texts)).result())

    def _respond(self, served: ServedModel, probs: np.ndarray) -> PredictResponse:
        predictor, version = served.predictor, served.info.version
        predictions = []
        for label, row in zip(predictor.decide(probs), probs):
            pid = uuid.uuid4().hex
            self._remember(pid, version, label if isinstance(label, list) else [label])
            predictions.append(Prediction(prediction_id=pid, label=label,
                                          probabilities=dict(zip(predictor.labels, map(float, row)))))
        return PredictResponse(model=served.info.ref(), predictions=predictions)

    def explain(self, text: str) -> dict[str, Any]:
        """Token attributions for the predicted class, on the current model."""
        self.check_texts(text)
        served = self.holder.current
        with served.lock:  # its forward hook must not meet a batch's forward pass
            return token_attributions(served.predictor, text)

    # ---------------------------------------------------------------- feedback

    def _remember(self, pid: str, version: str | None, labels: list[str]) -> None:
        with self._recent_lock:
            self._recent[pid] = (version, labels)
            while len(self._recent) > REMEMBERED_PREDICTIONS:
                self._recent.popitem(last=False)

    def feedback(self, text: str, labels: str | list[str], prediction_id: str | None = None) -> FeedbackResponse:
        """Store a correction; the version and prediction come from the prediction id when known."""
        self.check_texts(text)
        info = self.holder.current.info
        labels = [labels] if isinstance(labels, str) else list(labels)
        unknown = [label for label in labels if label not in info.labels]
        if not labels or unknown:
            raise BadInput(["labels"], f"{unknown or 'nothing'} given; choose from {info.labels}")
        if not info.multi_label and len(labels) != 1:
            raise BadInput(["labels"], f"this model gives one label per text, got {len(labels)}")
        with self._recent_lock:
            version, predicted = self._recent.get(prediction_id or "", (info.version, None))
        stamp = datetime.now(timezone.utc)
        try:
            append_feedback(self.cfg.feedback_root, [{
                "text": text, "labels": labels, "predicted": predicted, "model_version": version,
                "prediction_id": prediction_id, "timestamp": stamp}])
        except DataError as exc:
            raise BadInput(["labels"], str(exc)) from None
        return FeedbackResponse(timestamp=stamp, model_version=version, prediction_id=prediction_id)
