"""A model scored on a preprocessed split: texts, gold labels and probabilities, in one object the
notebooks, analysis and plots share; and the report files the evaluate notebook writes."""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textclf.data.shards import read_split, token_ids
from textclf.evaluation.metrics import multi_hot
from textclf.storage import download_dir, exists, join, read_json, read_text


@dataclass
class Scored:
    texts: list[str]
    truth: Any  # label ids, or multi-hot rows for multi-label
    probs: np.ndarray
    labels: list[str]
    multi_label: bool
    threshold: float

    @property
    def predicted(self) -> np.ndarray:
        """Predicted ids (single-label) or multi-hot decisions (multi-label)."""
        return (self.probs >= self.threshold).astype(np.int64) if self.multi_label else self.probs.argmax(1)


def load_predictor(model_uri: str, batch_size: int = 128):
    """A Predictor for a local or remote model folder (remote ones are cached locally)."""
    from transformers.utils import logging as hf_logging

    from textclf.model.predictor import Predictor

    hf_logging.disable_progress_bar()  # a weight-loading bar is noise in a rendered notebook

    return Predictor(download_dir(model_uri, Path(tempfile.gettempdir(), "textclf-models")), batch_size=batch_size)


def score_split(predictor, shard_uri: str) -> Scored:
    """Probabilities for every row of a tokenized split, with texts and gold labels."""
    frame = read_split(shard_uri, ["text", "label", "input_ids"])
    probs = predictor.probs_from_ids(token_ids(frame["input_ids"]))
    labels = [list(x) for x in frame["label"]] if predictor.multi_label else frame["label"].to_numpy()
    truth = multi_hot(labels, len(predictor.labels)) if predictor.multi_label else np.asarray(labels, dtype=np.int64)
    return Scored(frame["text"].tolist(), truth, probs, predictor.labels, predictor.multi_label, predictor.threshold)


def training_log(log_path: str | None, model_uri: str) -> list[dict[str, Any]]:
    """The train step's log records (steps and epochs), or the epoch history saved with the model."""
    if log_path and exists(log_path):
        return [json.loads(line) for line in read_text(log_path).splitlines() if line.strip()]
    record = join(model_uri, "training.json")
    return [{"kind": "epoch", **r} for r in read_json(record)["history"]] if exists(record) else []


def report_folder(output_dir: str | Path | None, about: str) -> Path:
    """`output_dir`, or a folder in the temp dir named for what was evaluated: a notebook run from
    the repository root must not leave metrics.json there, nor overwrite a run's own reports."""
    if output_dir:
        return Path(output_dir)
    return Path(tempfile.gettempdir(), "textclf-reports", re.sub(r"[^A-Za-z0-9._-]+", "_", about).strip("_"))


def write_metrics(report: dict[str, Any], output_dir: str | Path) -> Path:
    """metrics.json (the run's test metrics) and report.json (the details) in `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report["details"], indent=2, sort_keys=True))
    path = out / "metrics.json"
    path.write_text(json.dumps(report["metrics"], indent=2, sort_keys=True))
    return path
