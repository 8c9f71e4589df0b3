"""Micro-batching: concurrent requests share one forward pass.

One worker thread takes the first waiting request, gathers more for at most `wait_ms` (or until
`max_batch` texts; with 0, just what queued while the previous batch ran, so a lone request is not
held back), and runs them together through the model that is current at that moment; the
Predictor sorts them by length and pads per batch. Every request in a batch is answered by the
same model, which the result names. The model only needs `predict_proba(texts)`, so an
ONNX or int8 backend with that method fits unchanged.

One request must not break others: when a batch fails, its requests are scored one by one, and
only those that fail alone get an error. A text that fails while the model answers others is the
text's fault: a BadInput naming it (`texts.3`); when nothing succeeds the model is at fault and the
error is passed on as it is.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from textclf.serve.model_holder import ServedModel
from textclf.serve.schemas import BadInput

log = logging.getLogger(__name__)


@dataclass
class _Job:
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, model: Callable[[], ServedModel], max_batch: int = 32, wait_ms: float = 0.0):
        self._model, self.max_batch, self.wait = model, max_batch, wait_ms / 1000
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, texts: list[str]) -> Future:
        """A future of (the ServedModel that answered, probabilities: one row per text)."""
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        job = _Job(list(texts))
        self._queue.put(job)
        return job.future

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size, deadline = [first], len(first.texts), time.monotonic() + self.wait
        while size < self.max_batch:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.texts)
        return jobs, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs, stopping = self._gather(first)
            served = self._model()  # fixed for this batch: a swap now affects the next one
            try:
                probs = self._score(served, [t for job in jobs for t in job.texts])
            except Exception:  # keep the worker alive; find who failed, answer everyone else
                self._one_by_one(served, jobs)
                continue
            bounds = np.cumsum([0] + [len(job.texts) for job in jobs])
            for job, start, end in zip(jobs, bounds[:-1], bounds[1:]):
                job.future.set_result((served, probs[start:end]))
        while not self._queue.empty():  # submitted after stop(): answer, don't hang
            job = self._queue.get_nowait()
            if job is not None:
                job.future.set_exception(RuntimeError("the server is shutting down"))

    @staticmethod
    def _score(served: ServedModel, texts: list[str]) -> np.ndarray:
        with served.lock:
            return served.predictor.predict_proba(texts)

    def _one_by_one(self, served: ServedModel, jobs: list[_Job]) -> None:
        """After a batch failed: each request alone, then each text of a failing one alone, so the
        error names the text; a text counts as bad only once some other text was scored."""
        failed: list[tuple[_Job, int | None, Exception]] = []
        scored = False
        for job in jobs:
            try:
                job.future.set_result((served, self._score(served, job.texts)))
                scored = True
                continue
            except Exception as exc:
                culprit, error = None, exc
            for i, text in enumerate(job.texts):
                try:
                    self._score(served, [text])
                    scored = True
                except Exception as exc:
                    culprit, error = i, exc
                    break
            failed.append((job, culprit, error))
        for job, culprit, error in failed:
            if scored and culprit is not None:
                log.warning("texts.%s of a request could not be scored: %r", culprit, error)
                job.future.set_exception(BadInput(["texts", culprit], f"could not be scored ({type(error).__name__})"))
            else:
                job.future.set_exception(error)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
