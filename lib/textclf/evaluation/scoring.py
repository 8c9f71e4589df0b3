"""A model scored on a preprocessed split: texts, gold labels and probabilities, in one object the
notebooks, analysis and plots share; the scores TrainFlow stores beside its model so that every
later reader (reports, the gate) reads them instead of scoring again; and the report files the
evaluate notebook writes.

Stored scores are `<model folder>/scores/<split>.parquet`, one row per split row in order:
`probs` from the split's own token ids (what the reports evaluate), `served_probs` and
`served_length` from the raw text through the model's own tokenizer (what the server, the gate and
the drift profile see; the two differ only where the split was cut shorter than the model reads).
Their metadata names the split and the model by content, so scores are read only for those rows of
that model; otherwise the model scores the split now.
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.data.shards import read_split, token_ids
from textclf.evaluation.metrics import multi_hot
from textclf.storage import (
    atomic_file,
    download_dir,
    exists,
    filesystem,
    join,
    read_json,
    read_text,
)

SCORES = "scores"  # the folder inside the model folder
SPLIT_COLUMNS = ["text", "label", "input_ids"]  # what a Scored and a fingerprint read of a split
_METADATA = b"textclf.scores"


@dataclass
class Scored:
    texts: list[str]
    truth: Any  # label ids, or multi-hot rows for multi-label
    probs: np.ndarray
    labels: list[str]
    multi_label: bool
    threshold: float
    temperature: float = 1.0  # the model's calibration temperature: `probs` are of logits / T

    @property
    def predicted(self) -> np.ndarray:
        """Predicted ids (single-label) or multi-hot decisions (multi-label)."""
        return (self.probs >= self.threshold).astype(np.int64) if self.multi_label else self.probs.argmax(1)


@dataclass
class StoredScores:
    """A model's stored probabilities on one split, with the label settings they were decided by
    (the attributes a Predictor has, so either can stand for the model's head)."""
    probs: np.ndarray  # from the split's token ids
    served_probs: np.ndarray  # from the raw texts through the model's own tokenizer
    labels: list[str]
    multi_label: bool
    threshold: float
    temperature: float


def load_predictor(model_uri: str, batch_size: int = 128):
    """A Predictor for a local or remote model folder (remote ones are cached locally)."""
    from transformers.utils import logging as hf_logging

    from textclf.model.predictor import Predictor

    hf_logging.disable_progress_bar()  # a weight-loading bar is noise in a rendered notebook

    return Predictor(download_dir(model_uri, Path(tempfile.gettempdir(), "textclf-models")), batch_size=batch_size)


def _scored(frame: pd.DataFrame, probs: np.ndarray, head: Any) -> Scored:
    """The one way a Scored is built: a split's rows, their probabilities, and the model's labels,
    kind, threshold and temperature (`head`: a Predictor or StoredScores)."""
    labels = [list(x) for x in frame["label"]] if head.multi_label else frame["label"].to_numpy()
    truth = multi_hot(labels, len(head.labels)) if head.multi_label else np.asarray(labels, dtype=np.int64)
    return Scored(frame["text"].tolist(), truth, probs, head.labels, head.multi_label, head.threshold, head.temperature)


def score_split(predictor, shard_uri: str) -> Scored:
    """Probabilities for every row of a tokenized split, with texts and gold labels, scored now."""
    return _score_frame(predictor, read_split(shard_uri, SPLIT_COLUMNS))


def _score_frame(predictor, frame: pd.DataFrame) -> Scored:
    return _scored(frame, predictor.probs_from_ids(token_ids(frame["input_ids"])), predictor)


def scored_split(model_uri: str, shard_uri: str, predictor=None) -> Scored:
    """What `score_split` gives, read from the scores stored with the model when they are of this
    very split, else scored now (by `predictor` when one is loaded already): a run's reports load
    no model to score, a report on any other model and data still works."""
    frame = read_split(shard_uri, SPLIT_COLUMNS)
    stored = stored_scores(model_uri, frame)
    if stored is not None:
        return _scored(frame, stored.probs, stored)
    return _score_frame(predictor or load_predictor(model_uri), frame)  # the rows already read


def split_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a split's texts, gold labels and token ids, in row order: the rows stored scores
    belong to, wherever (and under whatever name) the split is read from."""
    digest = hashlib.sha256()
    for column in SPLIT_COLUMNS:
        rows = [np.frombuffer(x.encode(), np.uint8) if column == "text" else np.atleast_1d(np.asarray(x, np.int64))
                for x in frame[column]]
        digest.update(np.asarray([len(r) for r in rows], np.int64).tobytes())
        digest.update(np.concatenate(rows).tobytes() if rows else b"")
    return digest.hexdigest()


def model_fingerprint(model_uri: str) -> str:
    """sha256 of the folder's config.json (labels, threshold) and training.json (unique to each
    training): scores of a retrained or re-saved model are another model's."""
    digest = hashlib.sha256()
    for name in ("config.json", "training.json"):
        if exists(join(model_uri, name)):
            digest.update(read_text(join(model_uri, name)).encode())
    return digest.hexdigest()


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size list column as a (rows, labels) float32 matrix."""
    array = column.combine_chunks()
    return np.asarray(array.flatten(), dtype=np.float32).reshape(len(array), array.type.list_size)


def store_scores(predictor, model_uri: str, split: str, shard_uri: str) -> pd.DataFrame:
    """Score a split both ways it is read (see the module's docstring) and store it at
    `<model_uri>/scores/<split>.parquet`. Rows whose split tokens are what the model's tokenizer
    gives (usually all) go through the model once. Returns the split's rows with `served_probs`
    and `served_length` added (what the drift profile describes)."""
    frame = read_split(shard_uri, ["row_id", *SPLIT_COLUMNS])
    ids = token_ids(frame["input_ids"])
    served_ids = predictor.encode(frame["text"].tolist()) if len(frame) else []
    probs = predictor.probs_from_ids(ids)
    served = probs.copy()
    cut = [i for i, (a, b) in enumerate(zip(ids, served_ids)) if not np.array_equal(a, b)]
    if cut:
        served[cut] = predictor.probs_from_ids([served_ids[i] for i in cut])
    width = len(predictor.labels)
    lengths = np.asarray([len(x) for x in served_ids], dtype=np.int32)
    table = pa.table({"row_id": frame["row_id"].to_numpy(),
                      "probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), width),
                      "served_probs": pa.FixedSizeListArray.from_arrays(pa.array(served.ravel()), width),
                      "served_length": lengths})
    about = {"split": split, "shard_uri": shard_uri, "rows": len(frame), "split_fingerprint": split_fingerprint(frame),
             "model_fingerprint": model_fingerprint(model_uri), "labels": predictor.labels,
             "multi_label": predictor.multi_label, "threshold": predictor.threshold,
             "temperature": predictor.temperature}
    with atomic_file(join(model_uri, SCORES, f"{split}.parquet")) as local:
        pq.write_table(table.replace_schema_metadata({_METADATA: json.dumps(about)}), local)
    return frame.assign(served_probs=list(served), served_length=lengths)


def stored_scores(model_uri: str, frame: pd.DataFrame) -> StoredScores | None:
    """The scores stored with the model for exactly these rows (`frame`: SPLIT_COLUMNS of a split),
    or None: none stored, another split, or the folder's model changed since."""
    found = [uri for uri in (join(model_uri, SCORES, f"{s}.parquet") for s in ("test", "val")) if exists(uri)]
    if not found:
        return None
    want = {"split_fingerprint": split_fingerprint(frame), "model_fingerprint": model_fingerprint(model_uri)}
    for uri in found:
        fs, path = filesystem(uri)
        about = json.loads((pq.read_metadata(path, filesystem=fs).metadata or {}).get(_METADATA, b"{}"))
        if all(about.get(k) == v for k, v in want.items()):
            table = pq.read_table(path, columns=["probs", "served_probs"], filesystem=fs)
            return StoredScores(_matrix(table["probs"]), _matrix(table["served_probs"]), about["labels"],
                                about["multi_label"], about["threshold"], about["temperature"])
    return None


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
