"""gs:// with no code change: storage helpers, preprocessing shards, MLflow artifacts, the feedback
store and a DVC remote, all against a real GCS emulator on 127.0.0.1."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import TINY, run_flow, toy_rows, write_csv
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)


def test_storage_round_trip(gcs, tmp_path):
    from textclf import storage

    uri = gcs.url("storage", "run", "manifest.json")
    assert not storage.exists(uri)
    storage.write_json(uri, {"labels": ["negative", "positive"]})
    assert storage.read_json(uri) == {"labels": ["negative", "positive"]}
    assert storage.join(gcs.url("a"), "b", "c.json") == gcs.url("a/b/c.json")

    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
    remote = storage.upload_dir(folder, gcs.url("storage", "model"))
    with storage.local_dir(remote) as local:
        assert (local / "sub" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    cached = storage.download_dir(remote, tmp_path / "cache")
    assert (cached / "config.json").read_text() == "{}" and (cached / ".complete").exists()


def test_preprocess_reads_and_writes_gs(gcs, tmp_path):
    """Source CSV on gs://, shards and manifest to gs://: the preprocess step's whole I/O."""
    from textclf import storage
    from textclf.config import compose
    from textclf.data.preprocess import preprocess

    csv = write_csv(tmp_path / "reviews.csv", toy_rows(120, seed=3))
    source = gcs.url("raw", "reviews.csv")
    storage.write_bytes(source, csv.read_bytes())
    cfg = compose(f"model=tiny data.source={source} data.dask.scheduler_address=sync")
    out = gcs.url("artifacts", "TrainFlow", "1", "data")
    manifest = preprocess(cfg, out)

    assert storage.read_json(storage.join(out, "manifest.json"))["id2label"] == manifest["id2label"]
    assert manifest["fingerprint"]["sources"][source]["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    total = 0
    for split in ("train", "val", "test"):
        shard = manifest["shards"][split]
        assert shard.startswith(out)
        fs, path = storage.filesystem(shard)
        table = pq.read_table(path, filesystem=fs)
        assert table.num_rows == manifest["splits"][split]["rows"] > 0
        total += table.num_rows
    assert total == 120


def test_mlflow_artifacts_on_gs(gcs, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("gcs", artifact_location=gcs.url("mlruns"))
    run = client.create_run(experiment)
    report = tmp_path / "report.html"
    report.write_text("<h1>metrics</h1>")
    client.log_artifact(run.info.run_id, str(report), artifact_path="reports")
    assert run.info.artifact_uri.startswith(gcs.url("mlruns"))

    from textclf import storage

    assert storage.exists(f"{run.info.artifact_uri}/reports/report.html")
    back = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="reports/report.html",
                                               dst_path=str(tmp_path / "back"), tracking_uri=tracking_uri)
    assert Path(back).read_text() == "<h1>metrics</h1>"


def test_feedback_store_on_gs(gcs):
    from textclf.monitoring.feedback import append_feedback, read_feedback

    root = gcs.url("feedback")
    first = append_feedback(root, [{"text": "great film", "labels": "positive", "predicted": "negative",
                                    "model_version": "3", "prediction_id": "p1"}])
    append_feedback(root, [{"text": "dull film", "labels": ["negative"]}])
    assert first.startswith(root + "/")
    frame = read_feedback(root)
    assert list(frame["text"]) == ["great film", "dull film"]
    assert [list(x) for x in frame["labels"]] == [["positive"], ["negative"]]
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_dvc_remote_on_gs(gcs, tmp_path):
    """A `dvc-gs` remote: push, drop the local cache, and read the data back through the remote."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_csv(repo / "reviews.csv", toy_rows(40, seed=5))
    dvc = [sys.executable, "-m", "dvc"]

    def run(*args: str) -> str:
        done = subprocess.run([*dvc, *args], cwd=repo, env=os.environ, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("init", "--no-scm", "-q")
    run("remote", "add", "-d", "store", gcs.url("dvc"))
    run("add", "-q", "reviews.csv")
    run("push", "-q")
    expected = (repo / "reviews.csv").read_bytes()
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "reviews.csv").unlink()

    import dvc.api
    from textclf import storage

    fs, path = storage.filesystem(gcs.url("dvc"))
    assert fs.find(path), "nothing pushed to the gs:// remote"
    with dvc.api.open("reviews.csv", repo=str(repo), mode="rb") as f:
        assert f.read() == expected


READ_RUN = """
import json
from metaflow import Flow, namespace

namespace(None)
run = Flow("TrainFlow").latest_run
end = run["end"].task
names = {a.id for a in end.artifacts}
print(json.dumps({"pathspec": run.pathspec, "successful": run.successful, "names": sorted(names),
                  **{k: end[k].data for k in ("model_uri", "manifest", "paths", "test_metrics", "reports", "cfg", "registration")
                     if k in names}}, default=str))
"""


@pytest.mark.integration
def test_train_flow_with_everything_on_gs(gcs, toy_csv, tmp_path):
    """The whole TrainFlow with the Metaflow datastore, artifact root, MLflow artifacts and the
    feedback store on the emulator's bucket: nothing but the environment changes. Its own MLflow
    store: an experiment keeps the artifact location it was created with, and the bucket goes
    away with the emulator."""
    from textclf import storage

    env = {**gcs.env(), "METAFLOW_DEFAULT_DATASTORE": "gs", "METAFLOW_DATASTORE_SYSROOT_GS": gcs.url("metaflow"),
           "TEXTCLF_ARTIFACT_ROOT": gcs.url("artifacts"), "TEXTCLF_MLFLOW_ARTIFACTS": gcs.url("mlruns"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    run_flow("train_flow.py", f"data.source={toy_csv} {TINY} train.nproc_per_node=1", env=env)
    done = subprocess.run([sys.executable, "-c", READ_RUN], env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["successful"]

    # Metaflow's own artifacts live in the gs:// datastore.
    fs, path = storage.filesystem(gcs.url("metaflow", "TrainFlow"))
    assert fs.find(path), "no Metaflow datastore objects on gs://"
    # Shards, the model and the reports live under the gs:// artifact root, in the folder of the
    # run's @project branch (a bucket is shared: the user's own branch is kept apart there).
    root = gcs.url("artifacts", "user.tester", "TrainFlow")
    assert run["paths"]["root"].startswith(root)
    for split in ("train", "val", "test"):
        assert run["manifest"]["shards"][split].startswith(root)
    model = run["model_uri"]
    assert model.startswith(root)
    # the weights, and what the rank that trained scored and profiled, straight into the bucket
    for name in ("model.safetensors", "config.json", "tokenizer.json", "scores/val.parquet", "scores/test.parquet",
                 "profile.json", "profile_embeddings.npy"):
        assert storage.exists(storage.join(model, name)), name
    assert run["test_metrics"]["accuracy"] > 0.8, run["test_metrics"]
    for report in run.get("reports", {}).values():
        assert report.startswith(root) or report.startswith("gs://"), report
    # The resolved config sends the MLflow artifacts and the feedback store to the bucket too.
    cfg = run["cfg"]
    assert cfg["registry"]["artifact_location"] == gcs.url("mlruns")
    assert cfg["serve"]["feedback_root"] == gcs.url("artifacts", "feedback")
    from textclf.monitoring.feedback import append_feedback, read_feedback

    append_feedback(cfg["serve"]["feedback_root"], [{"text": "a superb film", "labels": "positive"}])
    assert list(read_feedback(cfg["serve"]["feedback_root"])["text"]) == ["a superb film"]
    # MLflow: the registered version's files are in the bucket, not on this machine.
    from mlflow import MlflowClient

    assert "registration" in run, "the register step set no `registration`"
    reg = run["registration"]
    version = MlflowClient(tracking_uri=cfg["registry"]["tracking_uri"]).get_model_version(reg["model_name"], reg["version"])
    assert version.source.startswith(gcs.url("mlruns")), version.source
    fs, path = storage.filesystem(gcs.url("mlruns"))
    assert any(p.endswith("model/model.safetensors") for p in fs.find(path))
