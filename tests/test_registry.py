"""MLflow tracking and the champion / challenger gate: two TrainFlow runs against a real
`mlflow server` (sqlite backend, proxied artifacts), and the gate on the default sqlite store."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import SANDBOX, TINY, latest_run, run_flow, toy_rows, write_csv
from support.mlflow_server import mlflow_server as serve_mlflow

pytestmark = pytest.mark.integration
# Barely trained: about chance on the toy set, where TINY reaches ~1.0.
WORSE = "model=tiny train.lr=1e-6 train.epochs=1 train.batch_size=16 train.checkpoint_every_steps=0"
NAME = "served-gate"
SERVED = f"{NAME}.user.tester"  # what a user's own @project branch (METAFLOW_USER=tester) writes on a shared server


@pytest.fixture(scope="module")
def mlflow_server():
    """`mlflow server` with a sqlite backend and proxied local artifacts, one worker, 127.0.0.1."""
    root = SANDBOX / "mlflow-server"
    with serve_mlflow(root, str(root / "artifacts")) as url:
        yield url


@pytest.fixture(scope="module")
def server_runs(mlflow_server, toy_csv):
    """A deliberately weak TrainFlow, then a good one, both tracked and registered on the server."""
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    runs = {}
    for key, overrides in (("weak", WORSE), ("strong", TINY)):
        done = run_flow("train_flow.py", f"data.source={toy_csv} {overrides} registry.model_name={NAME}", env=env)
        runs[key] = latest_run("TrainFlow")
        runs[f"{key}_log"] = done.stdout + done.stderr
    return runs


def _registration(run) -> dict:
    return run["register"].task["registration"].data


def test_first_model_is_champion_and_a_better_second_one_takes_over(server_runs, mlflow_server):
    first, second = _registration(server_runs["weak"]), _registration(server_runs["strong"])
    assert (first["alias"], first["reason"]) == ("champion", "no champion yet")
    assert second["alias"] == "champion" and second["previous_champion"] == first["version"]
    assert second["candidate"] > second["champion"]
    assert f"{SERVED} v{second['version']} -> champion" in server_runs["strong_log"]  # the decision is printed

    client = MlflowClient(mlflow_server)
    assert str(client.get_model_version_by_alias(SERVED, "champion").version) == second["version"]
    tags = client.get_model_version(SERVED, second["version"]).tags
    assert tags["gate.decision"] == "champion" and tags["gate.champion_version"] == first["version"]
    assert float(tags["gate.candidate"]) == pytest.approx(second["candidate"])
    assert float(tags["gate.champion"]) == pytest.approx(second["champion"])
    mlflow_run = client.get_run(server_runs["strong"]["start"].task["mlflow_run_id"].data)
    assert mlflow_run.data.metrics["gate_champion_accuracy"] == pytest.approx(second["champion"])
    assert mlflow_run.data.params["gate.decision"] == "champion"


def test_one_mlflow_run_holds_config_code_data_curves_and_artifacts(server_runs, mlflow_server):
    run = server_runs["strong"]
    client = MlflowClient(mlflow_server)
    mlflow_run = client.get_run(run["start"].task["mlflow_run_id"].data)
    cfg = run["start"].task["cfg"].data
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["model.backbone"] == cfg["model"]["backbone"] == "tiny-bert"
    assert mlflow_run.data.params["train.lr"] == str(cfg["train"]["lr"])
    tags = mlflow_run.data.tags
    assert tags["metaflow.pathspec"] == run.pathspec and tags["backbone"] == "tiny-bert"
    assert tags["data.fingerprint"] == run["end"].task["data_fingerprint"].data
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("True", "False")

    # Rank 0 logged the curves live: per-step train_loss only exists that way (no backfill of steps).
    history = run["end"].task["training"].data["history"]
    steps = client.get_metric_history(mlflow_run.info.run_id, "train_loss")
    assert steps and all(m.step % 10 == 0 for m in steps)
    val = client.get_metric_history(mlflow_run.info.run_id, "val_accuracy")
    assert [m.value for m in sorted(val, key=lambda m: m.step)] == pytest.approx([h["val_accuracy"] for h in history])
    assert mlflow_run.data.metrics["test_accuracy"] == pytest.approx(run["end"].task["test_metrics"].data["accuracy"])
    assert mlflow_run.data.metrics["train_samples_per_s"] > 0
    training = run["end"].task["training"].data  # temperature scaling fitted on val: its numbers reach MLflow
    assert {k: mlflow_run.data.metrics[k] for k in ("temperature", "val_ece_uncalibrated", "val_ece")} == \
        pytest.approx({k: training[k] for k in ("temperature", "val_ece_uncalibrated", "val_ece")})

    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"model", "config.json", "metrics.json", "training.json", "data"} <= artifacts
    model_files = {Path(a.path).name for a in client.list_artifacts(mlflow_run.info.run_id, "model")}
    assert {"MLmodel", "pyfunc_model.py", "artifacts"} <= model_files  # an MLflow Model around the folder
    folder_files = {Path(a.path).name for a in client.list_artifacts(mlflow_run.info.run_id, "model/artifacts/hf_model")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modeling_textclf.py", "README.md"} <= folder_files
    assert not any(name.endswith((".pkl", ".pickle")) for name in model_files | folder_files)


def test_metaflow_run_points_back_to_mlflow_without_rewriting_its_time(server_runs):
    """The links live in artifacts and the lineage: tags added to a finished run would move its
    creation time (Metaflow showed 14:52 for a run that started at 14:48)."""
    from textclf.registry.resolution import resolve_model

    run = server_runs["strong"]
    reg = _registration(run)
    resolved = resolve_model(run.pathspec, download=False)
    assert resolved.lineage["mlflow_run"] == run["start"].task["mlflow_run_id"].data
    assert resolved.version == reg["version"] and reg["alias"] == "champion"
    assert _registration(server_runs["weak"])["alias"] == "champion"  # the weak one was champion when it was registered
    for r in (server_runs["weak"], run):
        assert abs((r.created_at - r["start"].task.created_at).total_seconds()) < 5


def test_lineage_round_trips_from_the_alias_to_the_run_that_made_it(server_runs, mlflow_server, toy_csv):
    strong = server_runs["strong"]
    done = subprocess.run([sys.executable, "-m", "textclf.cli", "lineage", f"models:/{SERVED}@champion", "--json"],
                          env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}, capture_output=True, text=True,
                          check=True)
    record = json.loads(done.stdout)
    assert record["metaflow_run"] == strong.pathspec
    assert record["data_fingerprint"] == strong["end"].task["manifest"].data["fingerprint"]["sha256"]
    assert record["config"] == strong["start"].task["cfg"].data
    assert record["data_sources"][str(toy_csv)]["sha256"]
    assert record["test_metrics"]["accuracy"] == pytest.approx(strong["end"].task["test_metrics"].data["accuracy"])


def test_project_branches_keep_their_registry_entries_and_artifacts_apart(server_runs, mlflow_server, toy_csv):
    """On one tracking server: a test branch and production each get a registered model, a champion
    and an artifact folder of their own, and the user's branch (the server runs) a third."""
    from textclf.config import compose

    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    runs = {}
    for options in (("--branch", "exp"), ("--production",)):
        run_flow("train_flow.py", f"data.source={toy_csv} {WORSE} registry.model_name={NAME}", env=env, options=options)
        runs[options[-1]] = latest_run("TrainFlow")
    exp, prod = (_registration(runs[k]) for k in ("exp", "--production"))
    assert (exp["model_name"], exp["alias"], exp["reason"]) == (f"{NAME}.test.exp", "champion", "no champion yet")
    assert (prod["model_name"], prod["alias"], prod["reason"]) == (NAME, "champion", "no champion yet")

    client = MlflowClient(mlflow_server)
    for run, name in ((runs["exp"], f"{NAME}.test.exp"), (runs["--production"], NAME),
                      (server_runs["strong"], SERVED)):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.run_id == run["start"].task["mlflow_run_id"].data, name
        assert client.get_run(champion.run_id).data.tags["metaflow.branch"] == run["start"].task["cfg"].data["branch"]
    assert {t for t in runs["exp"].system_tags if t.startswith("project")} == {"project:textclf",
                                                                               "project_branch:test.exp"}
    root = compose().artifact_root  # a local folder: the user's branch keeps the plain root, test.exp does not
    assert runs["exp"]["start"].task["paths"].data["root"] == str(Path(root, "test.exp", "TrainFlow", runs["exp"].id))
    assert runs["--production"]["start"].task["paths"].data["root"] == str(Path(root, "TrainFlow",
                                                                              runs["--production"].id))


def test_resolve_model_loads_the_champion_from_the_server(server_runs, mlflow_server):
    from textclf.model.predictor import Predictor
    from textclf.registry.resolution import resolve_model

    reg = _registration(server_runs["strong"])
    model = resolve_model(f"models:/{SERVED}@champion", tracking_uri=mlflow_server)
    assert (model.name, model.version, model.alias) == (SERVED, reg["version"], "champion")
    assert model.run_id == server_runs["strong"].pathspec
    out = Predictor(model.path).predict(["the film was truly wonderful show 12"])
    assert out[0]["label"] == "positive"
    again = resolve_model(f"models:/{SERVED}/{reg['version']}", tracking_uri=mlflow_server)
    assert again.path == model.path and again.alias is None  # cached by the version's artifact URI


def test_default_sqlite_store_keeps_the_champion_when_a_worse_model_arrives(trained_run, server_runs):
    """The gate on the default store (sqlite file, local artifact root): the good model of the
    shared run, then the weak model of the server test, both scored on the same test split."""
    from textclf.registry.gate import register
    from textclf.registry.tracking import start_run, tag_data

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    trained = _registration(trained_run)
    version = client.get_model_version(trained["model_name"], trained["version"])
    assert version.run_id == trained_run["start"].task["mlflow_run_id"].data
    assert Path(client.get_run(version.run_id).info.artifact_uri.removeprefix("file://")).is_relative_to(SANDBOX)

    name = "sqlite-gate"
    decisions = []
    for run in (trained_run, server_runs["weak"]):
        cfg = {**run["start"].task["cfg"].data, "registry": {**trained_run["start"].task["cfg"].data["registry"],
                                                             "model_name": name}}
        manifest = run["end"].task["manifest"].data
        mlflow_run = start_run(cfg, run.pathspec)
        tag_data(cfg, mlflow_run, manifest)
        decisions.append(register(cfg, mlflow_run, run["end"].task["model_uri"].data, manifest, run.pathspec))
    good, weak = decisions
    assert good["alias"] == "champion" and weak["alias"] == "challenger", weak
    assert weak["candidate"] <= weak["champion"] == pytest.approx(good["candidate"])
    assert str(client.get_model_version_by_alias(name, "champion").version) == good["version"]
    assert str(client.get_model_version_by_alias(name, "challenger").version) == weak["version"]
    assert client.get_model_version(name, weak["version"]).tags["gate.decision"] == "challenger"


def test_gate_matches_gold_labels_by_name_not_by_id(trained_run):
    """A champion may order its labels differently: the gate compares label names."""
    from textclf.errors import TextclfError
    from textclf.registry.gate import gate_score

    manifest = trained_run["end"].task["manifest"].data
    model, test = trained_run["end"].task["model_uri"].data, manifest["shards"]["test"]
    id2label = manifest["id2label"]
    right = gate_score(model, test, id2label, "accuracy", multi_label=False)
    swapped = dict(zip(id2label, reversed(list(id2label.values()))))  # binary: every gold label flips
    assert right > 0.8
    assert gate_score(model, test, swapped, "accuracy", multi_label=False) == pytest.approx(1 - right)
    with pytest.raises(TextclfError, match="gate_metric='micro_f1'"):
        gate_score(model, test, id2label, "micro_f1", multi_label=False)


def test_gate_refuses_to_compare_a_champion_of_another_task(trained_run):
    """A multi-label run, or one with other class names, registered under a single-label champion's
    name is another task: one clear line that says so and what to do, not a TypeError from deep
    inside the scoring or a silent 0 that promotes anything."""
    from textclf.errors import TextclfError
    from textclf.registry.gate import gate_score

    manifest = trained_run["end"].task["manifest"].data
    with pytest.raises(TextclfError, match=r"champion\) is a single-label classifier .* multi-label .* "
                                           r"registry.model_name=textclf-multi-label"):
        gate_score(trained_run["end"].task["model_uri"].data, manifest["shards"]["test"], manifest["id2label"],
                   "micro_f1", multi_label=True, who="textclf v1 (the champion)")
    with pytest.raises(TextclfError, match=r"champion\) is a single-label classifier over \['negative', 'positive'\], "
                                           r"but this run's data is single-label over \['0', '1'\]"):
        gate_score(trained_run["end"].task["model_uri"].data, manifest["shards"]["test"], {"0": "0", "1": "1"},
                   "accuracy", multi_label=False, who="textclf v1 (the champion)")


def _label_swapped(model: str, dest: Path) -> Path:
    """The trained model with its two label names exchanged: right exactly where the model is wrong."""
    folder = shutil.copytree(model, dest, ignore=shutil.ignore_patterns("scores"))
    config = json.loads((folder / "config.json").read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    config["id2label"] = {str(i): name for i, name in enumerate(reversed(names))}
    config["label2id"] = {name: int(i) for i, name in config["id2label"].items()}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _register_with_golden(trained_run, name: str, golden: Path, model: str | Path) -> dict:
    """`register` in process on the default store, as TrainFlow's register step calls it, with `registry.golden`."""
    from textclf.registry.gate import register
    from textclf.registry.tracking import start_run, tag_data

    cfg = trained_run["start"].task["cfg"].data
    cfg = {**cfg, "registry": {**cfg["registry"], "model_name": name, "golden": str(golden)}}
    manifest = trained_run["end"].task["manifest"].data
    mlflow_run = start_run(cfg, trained_run.pathspec)
    tag_data(cfg, mlflow_run, manifest)
    return register(cfg, mlflow_run, str(model), manifest, trained_run.pathspec)


def test_the_golden_set_decides_even_when_the_test_split_points_the_other_way(trained_run, tmp_path, monkeypatch):
    """Champion: the trained model with its labels swapped; golden rows labelled the other way round,
    so the champion is right on them and the (much better on the test split) candidate wrong."""
    from textclf.model.predictor import Predictor

    model = trained_run["end"].task["model_uri"].data
    golden = write_csv(tmp_path / "golden.csv", [(text, {"positive": "negative", "negative": "positive"}[label])
                                                 for text, label in toy_rows(40, seed=23)])
    name = "golden-gate"
    first = _register_with_golden(trained_run, name, golden, _label_swapped(model, tmp_path / "swapped"))
    assert (first["alias"], first["reason"], first["golden"]) == ("champion", "no champion yet", str(golden))
    loads: list[str] = []
    real_init = Predictor.__init__
    monkeypatch.setattr(Predictor, "__init__", lambda self, folder, *a, **k: (loads.append(str(folder)),
                                                                             real_init(self, folder, *a, **k))[1])
    second = _register_with_golden(trained_run, name, golden, model)
    # The champion is scored now on both sets, from one load; the candidate's test scores were stored.
    assert len(loads) == 2 and len(set(loads)) == 2, loads
    assert second["candidate"] > 0.8 and second["champion"] < 0.2  # the test split says: far better
    assert second["golden_candidate"] < 0.2 and second["golden_champion"] > 0.8  # the pinned rows: far worse
    assert second["alias"] == "challenger" and second["previous_champion"] == first["version"]
    assert f"on the golden set {golden} (40 pinned rows, the same for every data version): not better" \
        in second["reason"] and f"on the candidate's test split {second['candidate']:.4f}" in second["reason"]

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    tags = client.get_model_version(name, second["version"]).tags
    assert tags["gate.decision"] == "challenger" and tags["gate.golden"] == str(golden)
    assert {k: float(tags[f"gate.{k}"]) for k in ("candidate", "champion", "golden_candidate", "golden_champion")} \
        == pytest.approx({k: second[k] for k in ("candidate", "champion", "golden_candidate", "golden_champion")})
    run_id = client.get_model_version(name, second["version"]).run_id
    metrics = client.get_run(run_id).data.metrics
    assert metrics["gate_golden_champion_accuracy"] == pytest.approx(second["golden_champion"])
    card = Path(client.download_artifacts(run_id, "model/artifacts/hf_model/README.md", str(tmp_path))).read_text()
    test_rows = trained_run["end"].task["manifest"].data["splits"]["test"]["rows"]
    assert f"| test split ({test_rows} rows; moves with the data version) | {second['candidate']:.4f} | " \
           f"{second['champion']:.4f} |" in card
    assert f"| golden set `{golden}` (40 pinned rows) | {second['golden_candidate']:.4f} | " \
           f"{second['golden_champion']:.4f} |" in card and "Registered as `challenger`" in card


@pytest.mark.parametrize("bad, message", [
    (("the meal was fine", "neutral"), r"row 3 \(registry.golden\): label 'neutral' is not one of the model's labels"),
    (("   ", "positive"), r"row 3 \(registry.golden\): empty text"),
])
def test_a_bad_golden_row_stops_the_gate_before_anything_is_registered(trained_run, tmp_path, bad, message):
    from textclf.errors import TextclfError

    rows = toy_rows(10, seed=29)
    golden = write_csv(tmp_path / "golden.csv", rows[:2] + [bad] + rows[2:])
    with pytest.raises(TextclfError, match=rf"{golden} {message}"):
        _register_with_golden(trained_run, "golden-refused", golden, trained_run["end"].task["model_uri"].data)
    assert not MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_registered_models("name = 'golden-refused'")


def test_a_golden_row_without_text_stops_the_flow_in_start_before_training(toy_csv, tmp_path):
    rows = toy_rows(10, seed=31)
    golden = write_csv(tmp_path / "golden.csv", rows[:4] + [("", "positive")] + rows[4:])
    done = run_flow("train_flow.py", f"data.source={toy_csv} {TINY} registry.golden={golden}", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and f"{golden} row 5 (registry.golden): empty text" in output, output[-3000:]
    assert "Traceback" not in output
    assert {step.id for step in latest_run("TrainFlow")} == {"start"}


def test_live_metrics_stop_with_one_warning_when_tracking_fails(tmp_path, capsys):
    from textclf.training.tracking import MetricLogger

    logger = MetricLogger(f"sqlite:///{tmp_path / 'mlflow.db'}", "no-such-run")
    for step in (10, 20):
        logger.log({"kind": "step", "step": step, "epoch": 0.5, "loss": 0.5, "lr": 1e-3})
    assert capsys.readouterr().out.count("live metrics stop here") == 1


def test_task_names_follow_the_labels():
    from textclf.registry.naming import Task, task_name

    assert task_name(Task(frozenset({"positive", "negative"}), False)) == "textclf-negative-positive"
    assert task_name(Task(frozenset({"app bug", "Billing"}), True)) == "textclf-multi-app_bug-billing"
    many = task_name(Task(frozenset(f"emotion_{i}" for i in range(28)), True))
    assert many.startswith("textclf-multi-emotion_0-emotion_1") and "-28labels-" in many and len(many) < 70
    sentiment = Task(frozenset({"negative", "positive"}), False)
    assert sentiment.comparable(Task(frozenset({"positive", "neutral"}), False))
    assert not sentiment.comparable(Task(frozenset({"negative", "positive"}), True))
    assert not sentiment.comparable(Task(frozenset({"0", "1"}), False))


def test_a_new_task_registers_under_its_own_name_and_an_explicit_clash_stops_in_start(trained_run, tmp_path):
    """After the quickstart's sentiment model, a multi-label task with default settings registers
    under its own name; naming the sentiment model explicitly stops the run in its start step,
    before a Dask cluster or a training process starts."""
    from conftest import write_csv
    from test_notebooks import tag_rows

    sentiment = trained_run["register"].task.data.registration["model_name"]
    assert sentiment == "textclf"  # registry.model_name=auto, and the first task here
    csv = write_csv(tmp_path / "tags.csv", tag_rows(240), header=("text", "labels"))
    tags = f"data.source={csv} data.label_column=labels data.multi_label=true {TINY} train.nproc_per_node=1"

    done = run_flow("train_flow.py", f"{tags} registry.model_name={sentiment}", check=False)
    stopped = latest_run("TrainFlow")
    assert done.returncode != 0 and [step.id for step in stopped] == ["start"]
    assert (f"registry.model_name=textclf: textclf's champion v{trained_run['register'].task.data.registration['version']}"
            " is single-label over ['negative', 'positive'], but this run's data is multi-label over "
            "['app_bug', 'billing', 'shipping']") in done.stdout + done.stderr

    run_flow("train_flow.py", tags)
    registration = latest_run("TrainFlow")["register"].task.data.registration
    assert registration["model_name"] == "textclf-multi-app_bug-billing-shipping"
    assert registration["alias"] == "champion"
