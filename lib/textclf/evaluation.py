"""Score a saved model on a preprocessed split: predictions, truth and metrics in one place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from textclf.metrics import multi_hot, quick_metrics
from textclf.predict import Predictor
from textclf.storage import filesystem, local_dir


@dataclass
class Scored:
    texts: list[str]
    truth: Any  # label ids, or multi-hot rows for multi-label
    probs: np.ndarray
    labels: list[str]
    multi_label: bool
    threshold: float


def score_split(model_uri: str, shard_uri: str, batch_size: int = 128) -> Scored:
    fs, path = filesystem(shard_uri)
    table = pq.read_table(path, columns=["text", "label", "input_ids"], filesystem=fs)
    with local_dir(model_uri) as folder:
        predictor = Predictor(folder, batch_size=batch_size)
        ids = [np.asarray(x, dtype=np.int64) for x in table["input_ids"].to_numpy(zero_copy_only=False)]
        probs = predictor.probs_from_ids(ids)
    labels = table["label"].to_pylist()
    truth = multi_hot(labels, len(predictor.labels)) if predictor.multi_label else np.asarray(labels)
    return Scored(table["text"].to_pylist(), truth, probs, predictor.labels, predictor.multi_label, predictor.threshold)


def test_metrics(model_uri: str, shard_uri: str) -> dict[str, Any]:
    scored = score_split(model_uri, shard_uri)
    return {"n": len(scored.texts), **quick_metrics(scored.truth, scored.probs, scored.multi_label, scored.threshold)}
