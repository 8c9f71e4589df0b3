"""Micro-batching: concurrent requests share one forward pass.

One worker thread takes the first waiting request, gathers more for at most `wait_ms` (or until
`max_batch` texts), and runs them together through the model that is current at that moment;
the Predictor sorts them by length and pads per batch. Every request in a batch is answered by
the same model, which the result names. The model only needs `predict_proba(texts)`, so an
ONNX or int8 backend with that method fits unchanged.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from textclf.serve.model_holder import ServedModel


@dataclass
class _Job:
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, model: Callable[[], ServedModel], max_batch: int = 32, wait_ms: float = 5.0):
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
                with served.lock:
                    probs = served.predictor.predict_proba([t for job in jobs for t in job.texts])
            except Exception as exc:  # answer every waiting request, keep the worker alive
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            bounds = np.cumsum([0] + [len(job.texts) for job in jobs])
            for job, start, end in zip(jobs, bounds[:-1], bounds[1:]):
                job.future.set_result((served, probs[start:end]))
        while not self._queue.empty():  # submitted after stop(): answer, don't hang
            job = self._queue.get_nowait()
            if job is not None:
                job.future.set_exception(RuntimeError("the server is shutting down"))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
