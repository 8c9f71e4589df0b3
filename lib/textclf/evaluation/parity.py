"""What each serving variant of a model scores on the same test rows: `onnx/parity.json`.

    textclf export TrainFlow/123                 # the run's model, parity on the run's test split
    textclf export path/to/model --test-shard path/to/shards/test
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from textclf.data.shards import read_split, token_ids
from textclf.evaluation.metrics import quick_metrics
from textclf.model.export import export_model
from textclf.model.onnx_runtime import ONNX_DIR
from textclf.model.predictor import VARIANTS, Predictor

PARITY = "parity.json"


def parity(model_dir: Path, shard_uri: str, batch_size: int = 64) -> dict[str, Any]:
    """Metrics of every variant on the same rows, agreement with PyTorch, largest probability gap."""
    frame = read_split(shard_uri, ["input_ids", "label"])
    ids, labels = token_ids(frame["input_ids"]), frame["label"].tolist()
    record: dict[str, Any] = {"test_shard": shard_uri, "n": len(ids)}
    reference = None
    for variant in VARIANTS:
        predictor = Predictor(model_dir, batch_size=batch_size, device="cpu", variant=variant)
        start = time.perf_counter()
        probs = predictor.probs_from_ids(ids)
        seconds = time.perf_counter() - start
        decided = predictor.decide(probs)
        entry = {**quick_metrics(labels, probs, predictor.multi_label, predictor.threshold),
                 "rows_per_s": len(ids) / max(seconds, 1e-9)}
        if reference is None:
            reference = (probs, decided)
        else:
            entry["agreement"] = float(np.mean([a == b for a, b in zip(decided, reference[1])])) if ids else 1.0
            entry["max_abs_prob_diff"] = float(np.abs(probs - reference[0]).max()) if ids else 0.0
        record[variant] = entry
    return record


def export_with_parity(model_dir: str | Path, test_shard: str | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Export the ONNX graphs, measure parity on `test_shard` when given, write `onnx/parity.json`."""
    folder = Path(model_dir)
    record = {**export_model(folder), "parity": parity(folder, test_shard, batch_size) if test_shard else None}
    (folder / ONNX_DIR / PARITY).write_text(json.dumps(record, indent=2))
    return record
