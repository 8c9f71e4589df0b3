"""The whole TrainFlow on a tiny random BERT with two torchrun processes on CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


def test_flow_learns_the_toy_set(trained_run):
    end = trained_run["end"].task
    metrics = end["test_metrics"].data
    assert metrics["n"] >= 25
    assert metrics["accuracy"] > 0.8, metrics  # chance is 0.5 on this balanced set


def test_flow_artifacts(trained_run):
    task = trained_run["end"].task
    manifest = task["manifest"].data
    assert manifest["id2label"] == {"0": "negative", "1": "positive"}
    for split in ("train", "val", "test"):
        table = pq.read_table(manifest["shards"][split])
        assert table.num_rows == manifest["splits"][split]["rows"] > 0
        assert set(table.column_names) == {"row_id", "text", "label", "input_ids", "length"}
    model = Path(task["model_uri"].data)
    assert (model / "model.safetensors").exists() and (model / "tokenizer.json").exists()
    config = json.loads((model / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    training = task["training"].data
    assert training["world_size"] == 2
    assert len(training["history"]) >= 1
    checkpoints = Path(task["paths"].data["checkpoint_dir"])
    assert (checkpoints / "latest").exists() and (checkpoints / "best.pt").exists()


def test_resolved_config_is_stored(trained_run, toy_csv):
    cfg = trained_run["start"].task["cfg"].data
    assert cfg["data"]["source"] == str(toy_csv)
    assert cfg["model"]["backbone"] == "tiny-bert"
    assert cfg["train"]["nproc_per_node"] == 2
    assert trained_run["end"].task["data_fingerprint"].data == trained_run["end"].task["manifest"].data["fingerprint"]["sha256"]
