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


@pytest.mark.parametrize("rows, header, extra, expected", [
    ([("fine film", "positive")], ("review", "label"), "", "missing column(s) ['text']"),
    ([("fine film", "positive"), ("dull film", "meh")] * 20, ("text", "label"),
     "data.labels=[negative,positive]", "'meh'"),
])
def test_bad_data_fails_the_step_with_a_clear_message_and_keeps_earlier_runs(
        trained_run, tmp_path, rows, header, extra, expected):
    from conftest import run_flow, write_csv

    earlier_model = Path(trained_run["end"].task["model_uri"].data)
    before = sorted(p.name for p in earlier_model.iterdir())
    bad = write_csv(tmp_path / "bad.csv", rows, header=header)
    done = run_flow("train_flow.py", f"data.source={bad} {extra}", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert expected in output, output[-3000:]
    assert "Traceback" not in output
    assert sorted(p.name for p in earlier_model.iterdir()) == before
