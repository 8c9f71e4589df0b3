"""Batch predictions over a file: `textclf predict` and PredictFlow read and write gs:// (a real GCS
emulator) and give, row for row, what the server's `/predict` answers for the same texts; an
interrupted PredictFlow resumes without scoring its finished shards again; bad input stops with one
line naming the file, the row and the column, leaving no output behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SANDBOX, latest_run, run_flow, toy_rows
from serving import serving
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)
from textclf import storage
from textclf.cli import main

# Texts a naive CSV reader would cut wrong: commas, quotes, line breaks inside a field.
TRICKY = ['a "quoted", wonderful film', "the hotel was awful,\nreally awful", "  spaces around a lovely meal  "]
SHARD_ROWS = 40


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rows = [text for text, _ in toy_rows(100, seed=21)]
    return rows[:10] + TRICKY + rows[10:]


@pytest.fixture(scope="module")
def source(gcs, texts) -> str:
    """The texts as a CSV on gs:// with an id column beside them (ignored: the row is the id)."""
    uri = gcs.url("predict", "in", "texts.csv")
    storage.write_bytes(uri, pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(index=False).encode())
    return uri


@pytest.fixture(scope="module")
def served(trained_run, texts) -> tuple[list[dict], dict]:
    """What the running server answers for the texts (64 per request), and the model it names."""
    from textclf.config import ServeConfig
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=trained_run.pathspec, feedback_root=str(SANDBOX / "predict" / "feedback"), poll_seconds=0)
    answers = []
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(texts), 64):
            body = client.post("/predict", json={"texts": texts[start:start + 64]}).raise_for_status().json()
            answers += body["predictions"]
    return answers, body["model"]


def read_parquet(uri: str) -> pd.DataFrame:
    fs, path = storage.filesystem(uri)
    return pq.read_table(path, filesystem=fs).to_pandas()


def read_parts(output: str) -> pd.DataFrame:
    fs, path = storage.filesystem(output)
    return pd.concat([read_parquet(f"gs://{p}") for p in sorted(fs.glob(f"{path}/part-*.parquet"))],
                     ignore_index=True)


def assert_agrees(frame: pd.DataFrame, answers: list[dict], model: dict) -> None:
    assert frame["row"].tolist() == list(range(1, len(answers) + 1))  # input order, data rows from 1
    assert frame["label"].tolist() == [a["label"] for a in answers]
    for label in answers[0]["probabilities"]:
        np.testing.assert_allclose(frame[f"prob_{label}"].to_numpy(np.float64),
                                   [a["probabilities"][label] for a in answers], atol=1e-6, rtol=0)
    assert set(frame["model_uri"]) == {model["uri"]} and set(frame["model_version"]) == {model["version"]}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textclf.cli", "predict", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=ROOT, timeout=600)


def test_textclf_predict_agrees_with_the_server_row_for_row(gcs, trained_run, source, served):
    output = gcs.url("predict", "cli", "predictions.parquet")
    done = cli(trained_run.pathspec, source, output, f"predict.shard_rows={SHARD_ROWS}", "predict.batch_size=16")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "predict: 100%" in done.stderr  # the progress bar
    assert_agrees(read_parquet(output), *served)


def test_textclf_predict_writes_csv_by_the_extension(trained_run, source, served, tmp_path):
    output = tmp_path / "predictions.csv"
    assert main(["predict", trained_run.pathspec, source, str(output)]) == 0
    frame = pd.read_csv(output, dtype={"model_version": str})
    assert_agrees(frame, *served)
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temporary file left beside it


@pytest.mark.integration
def test_predict_flow_agrees_with_the_server_and_writes_a_manifest(gcs, trained_run, source, served):
    output = gcs.url("predict", "flow")
    run_flow("predict_flow.py", f"predict.shard_rows={SHARD_ROWS}", "--model", trained_run.pathspec,
             "--source", source, "--output", output)
    assert_agrees(read_parts(output), *served)
    manifest = storage.read_json(f"{output}/_SUCCESS")
    answers, model = served
    assert manifest["rows"] == len(answers) and manifest["shards"] == 3 == -(-len(answers) // SHARD_ROWS)
    assert manifest["model"]["version"] == model["version"] and manifest["model"]["run_id"] == trained_run.pathspec
    assert manifest["scored"] == [0, 1, 2] and manifest["reused"] == [] and manifest["rows_per_s"] > 0
    assert latest_run("PredictFlow")["join"].task.data.scored == [0, 1, 2]


def part_stamps(output: str) -> dict[str, tuple]:
    """Each part's writer (from its own metadata) and modification time: a rescored part changes both."""
    fs, path = storage.filesystem(output)
    stamps = {}
    for part in sorted(fs.glob(f"{path}/part-*.parquet")):
        meta = json.loads(pq.read_schema(part, filesystem=fs).metadata[b"textclf"])
        stamps[part.rsplit("/", 1)[-1]] = (meta["written_by"], fs.modified(part))
    return stamps


@pytest.mark.integration
def test_an_interrupted_flow_resumes_without_rescoring_finished_shards(gcs, trained_run, texts, served):
    """The last shard holds a row without text: the run fails there (after its retries) with the first
    shards done. The row is fixed, `resume` scores only the missing shard, and a rerun into the same
    output scores nothing; the parts end equal to an uninterrupted run's."""
    source, output = gcs.url("predict", "resume", "texts.parquet"), gcs.url("predict", "resume", "out")
    broken = pd.DataFrame({"text": texts})
    broken.loc[len(texts) - 5, "text"] = None
    fs, path = storage.filesystem(source)
    with fs.open(path, "wb") as f:
        broken.to_parquet(f, row_group_size=25)
    failed = run_flow("predict_flow.py", f"predict.shard_rows={SHARD_ROWS}", "--max-workers", "1",
                      "--model", trained_run.pathspec, "--source", source, "--output", output, check=False)
    assert failed.returncode != 0
    assert f"{source} row {len(texts) - 4}: empty text in column 'text'" in failed.stdout + failed.stderr
    before = part_stamps(output)
    assert sorted(before) == ["part-00000.parquet", "part-00001.parquet"], before  # the bad shard wrote nothing
    assert not storage.exists(f"{output}/_SUCCESS")

    with fs.open(path, "wb") as f:
        pd.DataFrame({"text": texts}).to_parquet(f, row_group_size=25)
    resume = [sys.executable, str(ROOT / "flows" / "predict_flow.py"), "--no-pylint", "resume"]
    done = subprocess.run(resume, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    resumed = latest_run("PredictFlow")
    assert resumed["join"].task.data.reused == [0, 1] and resumed["join"].task.data.scored == [2]
    after = part_stamps(output)
    assert {k: after[k] for k in before} == before  # the finished shards' parts were not written again
    assert after["part-00002.parquet"][0].split("/")[1] == resumed.id
    assert_agrees(read_parts(output), *served)

    rerun = run_flow("predict_flow.py", f"predict.shard_rows={SHARD_ROWS}", "--model", trained_run.pathspec,
                     "--source", source, "--output", output)
    assert "already scored by" in rerun.stdout + rerun.stderr
    assert latest_run("PredictFlow")["join"].task.data.scored == []
    assert part_stamps(output) == after
    assert storage.read_json(f"{output}/_SUCCESS")["reused"] == [0, 1, 2]


@pytest.mark.parametrize("name, content, message", [
    ("empty-row.csv", "text\nfine film\n\"\"\nlovely\n", "empty-row.csv row 2: empty text in column 'text'"),
    ("no-column.csv", "review\nfine film\n", "no-column.csv: missing column(s) ['text']"),
    ("broken.jsonl", '{"text": "fine"}\n{"text": "ok"\n', "broken.jsonl line 2: not valid JSON"),
    ("latin1.tsv", "text\ncaf\xe9 au lait\n".encode("latin-1"), "latin1.tsv row 1: not valid UTF-8"),
])
def test_bad_input_stops_with_one_line_and_leaves_no_output(gcs, trained_run, capsys, name, content, message):
    source, output = gcs.url("predict", "bad", name), gcs.url("predict", "bad", f"{name}.parquet")
    storage.write_bytes(source, content.encode() if isinstance(content, str) else content)
    assert main(["predict", trained_run.pathspec, source, output, "predict.shard_rows=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"textclf predict: {gcs.url('predict', 'bad', message)}"), err
    assert not storage.exists(output)
