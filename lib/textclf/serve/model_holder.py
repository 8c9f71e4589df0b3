"""The model being served, and how it changes without downtime.

`ModelHolder.current` is one reference to an immutable `ServedModel`. A swap loads the new
version completely in the background, then replaces the reference in one assignment: requests
that already hold the old model finish on it, later ones get the new one, none waits or fails.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from textclf.evaluation.parity import export_with_parity
from textclf.model.onnx_runtime import onnx_path
from textclf.model.predictor import Predictor
from textclf.registry.resolution import ResolvedModel, resolve_model
from textclf.serve.schemas import ModelInfo

log = logging.getLogger(__name__)
MOVABLE = re.compile(r"models:/[^/@]+@[^/@]+")  # an alias can move; versions, runs and folders cannot


@dataclass(frozen=True)
class ServedModel:
    """A loaded model and what it is. `lock` serialises work that must not interleave on it
    (a forward hook for attributions must not see a batch's forward pass)."""

    predictor: Predictor
    info: ModelInfo
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


def load(uri: str, resolved: ResolvedModel, batch_size: int = 64, variant: str = "torch") -> ServedModel:
    """Load a resolved model; an ONNX variant a new version lacks is exported first (seconds),
    so a champion that moved to an un-exported version is still served the configured way."""
    if variant != "torch" and not onnx_path(resolved.path, variant).exists():
        export_with_parity(resolved.path)
    predictor = Predictor(resolved.path, batch_size=batch_size, variant=variant)
    info = ModelInfo(uri=uri, name=resolved.name, version=resolved.version, alias=resolved.alias,
                     run_id=resolved.run_id, labels=predictor.labels, multi_label=predictor.multi_label,
                     threshold=predictor.threshold if predictor.multi_label else None,
                     max_length=predictor.max_length, metrics=dict(resolved.metrics or {}),
                     lineage=dict(resolved.lineage or {}), loaded_at=datetime.now(timezone.utc))
    return ServedModel(predictor=predictor, info=info)


class ModelHolder:
    """Holds the served model; a background thread follows the alias every `poll_seconds`."""

    def __init__(self, uri: str, poll_seconds: float = 30.0, batch_size: int = 64, variant: str = "torch"):
        self.uri, self.poll_seconds, self.batch_size, self.variant = uri, poll_seconds, batch_size, variant
        self._current = load(uri, resolve_model(uri), batch_size, variant)
        self.problem: str | None = None  # why the last attempt to follow the URI failed; None once one succeeds
        self._swap_lock = threading.Lock()  # one load at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> ServedModel:
        return self._current

    def reload(self) -> bool:
        """Resolve the URI again; load and swap in what it names if that is another version (a
        folder, which has no version, is always reloaded). True when swapped. Resolving an
        unchanged alias costs a registry query, not a download, so polling is cheap. A failure
        keeps the old model answering, is remembered in `problem` (health reports it) and raised."""
        with self._swap_lock:
            try:
                swapped = self._follow()
            except Exception as exc:
                first_line = (str(exc).strip().splitlines() or [""])[0][:300]
                self.problem = f"could not load what {self.uri} names: {type(exc).__name__}: {first_line}"
                log.warning("%s; still serving version %s", self.problem, self._current.info.version)
                raise
            self.problem = None
            return swapped

    def _follow(self) -> bool:
        resolved = resolve_model(self.uri)
        old = self._current.info
        if resolved.version is not None and resolved.version == old.version:
            return False
        self._current = load(self.uri, resolved, self.batch_size, self.variant)  # one assignment: atomic for readers
        log.info("serving %s version %s (was %s)", self.uri, resolved.version, old.version)
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload()
            except Exception:  # a registry hiccup or a broken new version: logged, kept in `problem`
                log.debug("poll failed", exc_info=True)

    def start(self) -> None:
        if self.poll_seconds > 0 and MOVABLE.fullmatch(self.uri) and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
