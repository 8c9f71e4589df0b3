"""Batched inference from a saved model folder: what evaluation, serving and notebooks share."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

import textclf.model.network  # noqa: F401  (registers the textclf model type with the Auto classes)
from textclf.model.folder import max_length
from textclf.model.onnx_runtime import VARIANTS, onnx_logits
from textclf.model.padding import pad_batch
from textclf.model.probabilities import probabilities


class Predictor:
    """Tokenize, sort by length, batch, run under `inference_mode`, and restore input order.

    `variant` picks what computes the logits: the PyTorch weights (`torch`), or the ONNX graphs
    that `textclf export` writes into the model folder (`onnx` fp32, `onnx-int8` dynamic int8,
    CPU, faster). Everything around the model call is the same code for all three. The PyTorch
    model (`.model`, used by attributions and embeddings) is loaded on first use for ONNX variants.
    Probabilities are calibrated: the network (and the ONNX graph exported from it) divides its
    logits by the folder's `calibration_temperature` (`textclf.evaluation.calibration`), so nothing here does.
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 64, device: str | None = None,
                 variant: str = "torch"):
        from transformers import AutoConfig, AutoTokenizer

        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, not {variant!r}")
        self.model_dir = str(model_dir)
        self.variant = variant
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() and variant == "torch" else "cpu"))
        if variant == "torch":
            self._logits = lambda batch: self.model(**batch).logits
            cfg = self.model.config
        else:
            self._logits = onnx_logits(self.model_dir, variant, threads=torch.get_num_threads())
            cfg = AutoConfig.from_pretrained(self.model_dir)
        self.id2label = {int(k): v for k, v in cfg.id2label.items()}
        self.labels = [self.id2label[i] for i in range(len(self.id2label))]
        self.multi_label = getattr(cfg, "multi_label", cfg.problem_type == "multi_label_classification")
        self.threshold = float(getattr(cfg, "threshold", None) or 0.5)
        self.temperature = float(getattr(cfg, "calibration_temperature", 1.0))  # the network divides by it already
        self.max_length = max_length(cfg, self.tokenizer)
        self.batch_size = batch_size
        self.pad_id = self.tokenizer.pad_token_id or 0

    @cached_property
    def model(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval().to(self.device)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        if not len(texts):
            return []
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)["input_ids"]
        return [np.asarray(x, dtype=np.int64) for x in ids]

    @torch.inference_mode()
    def _by_length(self, input_ids: list[np.ndarray], run, width: int) -> np.ndarray:
        """`run` over batches of similar length (little padding), rows back in input order."""
        order = np.argsort([len(x) for x in input_ids], kind="stable")
        if not len(order):
            return np.zeros((0, width), np.float32)
        parts = []
        for start in range(0, len(order), self.batch_size):
            batch = pad_batch([input_ids[i] for i in order[start:start + self.batch_size]], self.pad_id)
            parts.append(run({k: v.to(self.device) for k, v in batch.items()}).float().cpu().numpy())
        return np.concatenate(parts)[np.argsort(order)]

    def probs_from_ids(self, input_ids: list[np.ndarray]) -> np.ndarray:
        return self._by_length(input_ids, lambda batch: probabilities(self._logits(batch).float(), self.multi_label),
                               len(self.labels))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Pooled sentence embeddings from the classifier's own backbone (what its head sees)."""
        return self._by_length(self.encode(texts), lambda batch: self.model.embed(**batch), 1)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.probs_from_ids(self.encode(texts))

    def decide(self, probs: np.ndarray) -> list[Any]:
        """Labels from probabilities: argmax, or every label over the threshold (multi-label)."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.threshold)] for p in probs]
        return [self.labels[j] for j in probs.argmax(1)]

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        probs = self.predict_proba(texts)
        return [{"label": label, "probabilities": dict(zip(self.labels, map(float, p)))}
                for label, p in zip(self.decide(probs), probs)]
