"""What the notebooks evaluate: resolve a run id or a model/data URI pair, and score the test split.

The notebooks (`notebooks/*.ipynb`) call these; metrics themselves live in `textclf.metrics`.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from textclf.errors import TextclfError
from textclf.metrics import multi_hot
from textclf.storage import download_dir, exists, filesystem, join, read_json


@dataclass
class EvalInputs:
    """Where the model and the data are, and (for a run) where its training log is."""
    model_uri: str
    test_shard: str
    data_uri: str | None = None  # a preprocessed data folder (manifest.json + shards/), if known
    run_id: str | None = None
    log_path: str | None = None  # the train step's metrics.jsonl, if this machine has it
    manifest: dict[str, Any] = field(default_factory=dict)


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


def resolve_inputs(run_id: str | None = None, model_uri: str | None = None,
                   data_uri: str | None = None) -> EvalInputs:
    """A TrainFlow run id alone, or a model URI plus a data URI (each overrides the run's)."""
    if run_id:
        from textclf.runs import run_outputs

        run = run_outputs(run_id)
        log = Path(run.paths["log_dir"], "metrics.jsonl")
        inputs = EvalInputs(model_uri=run.model_uri, test_shard=run.test_shard, data_uri=run.paths["data"],
                            run_id=run.pathspec, log_path=str(log) if log.exists() else None,
                            manifest=run.manifest)
        if model_uri:
            inputs.model_uri = resolve_model_uri(model_uri)
        if data_uri:
            inputs.test_shard, inputs.data_uri, inputs.manifest = data_location(data_uri)
        return inputs
    if not (model_uri and data_uri):
        raise TextclfError("give run_id (e.g. TrainFlow/123), or both model_uri and data_uri")
    shard, folder, manifest = data_location(data_uri)
    return EvalInputs(model_uri=resolve_model_uri(model_uri), test_shard=shard, data_uri=folder, manifest=manifest)


def resolve_model_uri(uri: str) -> str:
    """A model folder (local or gs://) from a folder, a run id or a `models:/` registry URI."""
    if uri.startswith("models:/"):
        from textclf.registry import resolve_model

        return str(resolve_model(uri).path)
    if uri.startswith("TrainFlow/"):
        from textclf.runs import run_outputs

        return run_outputs(uri).model_uri
    return uri


def data_location(data_uri: str) -> tuple[str, str | None, dict[str, Any]]:
    """(test shard, data folder or None, manifest or {}) for a data folder or a single shard."""
    manifest_uri = join(data_uri, "manifest.json")
    if exists(manifest_uri):
        manifest = read_json(manifest_uri)
        return manifest["shards"]["test"], data_uri, manifest
    if not exists(data_uri):
        raise TextclfError(f"data_uri {data_uri!r} does not exist")
    return data_uri, None, {}


def load_manifest(run_id: str | None = None, data_uri: str | None = None) -> tuple[dict[str, Any], str]:
    """(preprocessing manifest, data folder) of a run, or of a data folder written by preprocessing."""
    if run_id and not data_uri:
        inputs = resolve_inputs(run_id=run_id)
        return inputs.manifest, inputs.data_uri
    if not data_uri:
        raise TextclfError("give run_id (e.g. TrainFlow/123) or data_uri (a preprocessed data folder)")
    _, folder, manifest = data_location(data_uri)
    if not folder:
        raise TextclfError(f"data_uri {data_uri!r} has no manifest.json: give the data folder, not one shard")
    return manifest, folder


def load_predictor(model_uri: str, batch_size: int = 128):
    """A Predictor for a local or remote model folder (remote ones are cached locally)."""
    from transformers.utils import logging as hf_logging

    from textclf.predict import Predictor

    hf_logging.disable_progress_bar()  # a weight-loading bar is noise in a rendered notebook

    return Predictor(download_dir(model_uri, Path(tempfile.gettempdir(), "textclf-models")), batch_size=batch_size)


def read_split(shard_uri: str, columns: list[str] | None = None):
    """A preprocessed split (Parquet shards) as a pandas DataFrame."""
    fs, path = filesystem(shard_uri)
    return pq.read_table(path, columns=columns, filesystem=fs).to_pandas()


def score_split(predictor, shard_uri: str) -> Scored:
    """Probabilities for every row of a tokenized split, with texts and gold labels."""
    frame = read_split(shard_uri, ["text", "label", "input_ids"])
    ids = [np.asarray(x, dtype=np.int64) for x in frame["input_ids"]]
    probs = predictor.probs_from_ids(ids)
    labels = [list(x) for x in frame["label"]] if predictor.multi_label else frame["label"].to_numpy()
    truth = multi_hot(labels, len(predictor.labels)) if predictor.multi_label else np.asarray(labels, dtype=np.int64)
    return Scored(frame["text"].tolist(), truth, probs, predictor.labels, predictor.multi_label, predictor.threshold)


def training_log(inputs: EvalInputs) -> list[dict[str, Any]]:
    """The train step's log records (steps and epochs), or the epoch history saved with the model."""
    if inputs.log_path and Path(inputs.log_path).exists():
        return [json.loads(line) for line in Path(inputs.log_path).read_text().splitlines() if line.strip()]
    record = join(inputs.model_uri, "training.json")
    return [{"kind": "epoch", **r} for r in read_json(record)["history"]] if exists(record) else []


def write_metrics(report: dict[str, Any], output_dir: str | Path) -> Path:
    """metrics.json (the run's test metrics) and report.json (the details) in `output_dir`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report["details"], indent=2, sort_keys=True))
    path = out / "metrics.json"
    path.write_text(json.dumps(report["metrics"], indent=2, sort_keys=True))
    return path
