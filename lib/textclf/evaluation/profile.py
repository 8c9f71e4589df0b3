"""The reference profile TrainFlow saves beside every model: label shares, token lengths,
prediction confidences and a sample of sentence embeddings of held-out rows. MonitorFlow compares
fresh text with it. It lives with evaluation, below training: the rank that trained draws it."""
from __future__ import annotations

import io
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.evaluation.scoring import store_scores
from textclf.model.predictor import Predictor
from textclf.storage import (
    filesystem,
    join,
    local_dir,
    read_json,
    write_bytes,
    write_json,
)

PROFILE = "profile.json"
EMBEDDINGS = "profile_embeddings.npy"


def describe(predictor: Predictor, texts: list[str], labels: list[list[str]], confidence: np.ndarray,
             lengths: np.ndarray, max_embeddings: int = 256, seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """Label shares, token lengths, confidences (top-class probabilities) and an embedding sample
    of labelled, scored texts."""
    flat = [label for row in labels for label in row]
    shares = pd.Series(flat, dtype=object).value_counts(normalize=True)
    pick = np.random.default_rng(seed).permutation(len(texts))[:max_embeddings]
    return {
        "n": len(texts),
        "label_shares": {label: float(shares.get(label, 0.0)) for label in predictor.labels},
        "lengths": lengths.tolist(),
        "confidence": confidence.round(6).tolist(),
    }, predictor.embed([texts[i] for i in pick])


def save_profile(model_uri: str, manifest: dict[str, Any], max_rows: int = 2000, seed: int = 0,
                 local: Path | None = None) -> str:
    """Score the val and test splits once, storing the scores beside the model for the reports and
    the gate (`evaluation.scoring.store_scores`), then profile held-out rows (up to `max_rows` of
    them) from those scores with the same loaded model, and store the profile inside the model
    folder, so that it travels with the model into the registry. `local`: a copy of the folder already
    on this machine (the rank's own, before its upload), read instead of downloading a gs:// model."""
    id2label = {int(k): v for k, v in manifest["id2label"].items()}
    with nullcontext(local) if local else local_dir(model_uri) as model_dir:
        predictor = Predictor(model_dir)
        rows = pd.concat([store_scores(predictor, model_uri, split, manifest["shards"][split])
                          for split in ("val", "test")], ignore_index=True)
        rows = rows.iloc[np.sort(np.random.default_rng(seed).permutation(len(rows))[:max_rows])]
        labels = [[id2label[int(i)] for i in (y if isinstance(y, np.ndarray) else [y])] for y in rows["label"]]
        confidence = np.asarray([p.max() for p in rows["served_probs"]], dtype=np.float32)
        profile, vectors = describe(predictor, rows["text"].tolist(), labels, confidence,
                                    rows["served_length"].to_numpy())
    profile["created"] = datetime.now(timezone.utc).isoformat()
    buf = io.BytesIO()
    np.save(buf, vectors.astype(np.float32))
    write_bytes(join(model_uri, EMBEDDINGS), buf.getvalue())
    write_json(join(model_uri, PROFILE), profile)
    return join(model_uri, PROFILE)


def load_profile(model_dir: str) -> tuple[dict[str, Any], np.ndarray]:
    fs, path = filesystem(join(model_dir, EMBEDDINGS))
    with fs.open(path, "rb") as f:
        vectors = np.load(io.BytesIO(f.read()))
    return read_json(join(model_dir, PROFILE)), vectors
