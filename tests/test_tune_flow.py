"""TuneFlow on the tiny model: 2 rounds x 2 trials, a failed trial, `resume`, k-fold, the winner on test,
best.yaml -> TrainFlow."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import ROOT, SANDBOX, TINY, latest_run, run_flow
from textclf.config import compose
from textclf.errors import ConfigError

pytestmark = pytest.mark.integration

TUNE = f"""
overrides: [{', '.join(TINY.split())}, train.threads_per_proc=1, data.dask.scheduler_address=sync,
            tune.rounds=2, tune.trials_per_round=2, tune.max_trials=4, tune.sampler=tpe, tune.kfold=2,
            tune.final_seeds=2]
tune:
  space:
    - {{key: train.lr, low: 1.0e-3, high: 3.0e-3, log: true}}
    - {{key: train.batch_size, choices: [16, 32]}}
    - {{key: model.pooling, choices: [mean, cls]}}
"""


@pytest.fixture(scope="module")
def tuned(toy_csv):
    """A run whose round-2 trial in slot 2 fails, then `resume` finishes the study."""
    config = TUNE.replace("overrides: [", f"overrides: [data.source={toy_csv}, ")
    failed = run_flow("tune_flow.py", config, env={"TEXTCLF_TUNE_FAIL_SLOTS": "2"}, check=False)
    assert failed.returncode != 0
    assert "failure injected" in failed.stdout + failed.stderr
    first = latest_run("TuneFlow")
    resumed = subprocess.run([sys.executable, str(ROOT / "flows" / "tune_flow.py"), "--no-pylint", "resume"],
                             cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    run = latest_run("TuneFlow")
    assert run.successful and run.id != first.id
    return {"first": first, "run": run, "toy_csv": toy_csv}


def _study(run):
    ref = run["end"].task["study"].data
    return optuna.load_study(study_name=ref["name"], storage=ref["storage"])


def test_study_survives_the_failed_trial_and_resume(tuned):
    study = _study(tuned["run"])
    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(complete) == 4, states
    assert sorted(t.user_attrs["slot"] for t in complete) == [0, 1, 2, 3]
    assert failed and optuna.trial.TrialState.RUNNING not in states
    retried = {t.user_attrs["retry_of"]: t for t in study.trials if "retry_of" in t.user_attrs}
    injected = next(t for t in failed if t.user_attrs["slot"] == 2)
    assert injected.number in retried or any(t.params == injected.params for t in complete)
    for trial in complete:
        assert set(trial.params) == {"train.lr", "train.batch_size", "model.pooling"}
        assert 1e-3 <= trial.params["train.lr"] <= 3e-3 and 0 <= trial.value <= 1
    assert study.best_value > 0.8  # the toy set is learnable: some trial must learn it
    end = tuned["run"]["end"].task
    assert end["best"].data["value"] == study.best_value
    assert end["kfold"].data["n"] == 2 and 0 <= end["kfold"].data["mean"] <= 1
    assert end["final_result"].data["test"]["n"] == 2  # after the folds, the winner on test
    finals = sorted((t["final_seed"].data for t in tuned["run"]["final"]), key=lambda s: s["seed"])
    winner = f"trial-{end['best'].data['number']:03d}"
    assert [s["reused"] for s in finals] == [True, False]  # tune.seeds=1: the trial trained seed 42 only
    assert winner in finals[0]["model"] and "/final/seed-1/" in finals[1]["model"]


def test_every_trial_is_an_mlflow_child_run(tuned):
    from mlflow import MlflowClient

    end = tuned["run"]["end"].task
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    parent = client.get_run(end["mlflow_run"].data)
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_value"] == end["best"].data["value"]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 4 and any(c.info.status == "FAILED" for c in children)
    assert all("best_val_accuracy" in c.data.metrics and "train.lr" in c.data.params for c in finished)
    final = end["final_result"].data
    assert parent.data.metrics["final_test_accuracy_mean"] == pytest.approx(final["test"]["mean"])
    assert parent.data.metrics["final_test_ece_mean"] == pytest.approx(final["ece"]["mean"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best.yaml", "optimisation_history.png", "parallel_coordinates.png"} <= artifacts


def test_card_has_the_three_plots_and_no_cdn(tuned):
    run = tuned["run"]
    pattern = f"TuneFlow/runs/{run.id}/steps/report/tasks/*/cards/*.html"  # beside the datastore or the cwd
    pages = [*SANDBOX.rglob(pattern), *(ROOT / ".metaflow").rglob(pattern)]
    assert len(pages) == 1
    html = pages[0].read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html)  # self-contained: no CDN
    blob = re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', html).group(1)
    components = json.dumps(json.loads(base64.b64decode(blob)))
    for title in ("Optimisation history", "Parameter importances", "Parallel coordinates", "best.yaml"):
        assert title in components
    assert components.count('"type": "image"') == components.count("data:image/png;base64") == 3


def test_best_config_is_accepted_by_trainflow(tuned):
    end = tuned["run"]["end"].task
    path = Path(end["best_config_uri"].data)
    text = path.read_text()
    assert text == end["best_config"].data
    best = end["best"].data["params"]
    cfg = compose(text)
    assert cfg.train.lr == pytest.approx(best["train.lr"]) and cfg.train.batch_size == best["train.batch_size"]
    assert cfg.model.pooling == best["model.pooling"] and cfg.model.backbone == "tiny-bert"
    assert cfg.data.source == str(tuned["toy_csv"])
    assert set(yaml.safe_load(text)) == {"data", "model", "train"}
    run_flow("train_flow.py", text)
    trained = latest_run("TrainFlow")
    assert trained.successful
    assert trained["start"].task["cfg"].data["train"]["lr"] == pytest.approx(best["train.lr"])
    assert trained["end"].task["test_metrics"].data["accuracy"] > 0.7


@pytest.mark.parametrize("text, message", [
    ("overrides: [tune.sampler=grid]", "tune.sampler=grid needs a list"),
    ("tune: {space: [{key: data.source, choices: [a, b]}]}", "tune.space[0] (data.source): only train.* and model.*"),
    ("tune: {space: [{key: train.nope, choices: [1, 2]}]}", "tune.space[0] (train.nope): no such config key"),
    ("tune: {space: [{key: train.lr, low: 1, high: 0}]}", "tune.space[0] (train.lr): low must be below high"),
    ("tune: {space: [{key: train.lr, low: 1.0e-3, high: 2.0e-3, choices: [1]}]}", "give either choices or low"),
    ("tune: {space: [{key: train.lr, lo: 1}]}", "Key 'lo' not in 'SearchParam'"),
    ("overrides: [tune.kfold=1]", "tune.kfold"),
    ("overrides: [tune.final_seeds=1]", "tune.final_seeds must be 0 (off) or >= 2"),
    ("overrides: [tune.seeds=0]", "tune.seeds must be >= 1"),
    ("tune: {space: [], recipes: {a: {train.nope: 1}}}", "tune.recipes.a (train.nope): no such config key"),
    ("tune: {space: [], recipes: {a: {data.source: x}}}", "tune.recipes.a (data.source): only train.* and model.*"),
    ("tune: {space: [], recipes: {a: {train: {lr: fast}}}}", "tune.recipes.a: Value 'fast' of type 'str' could not"),
    ("tune: {space: [], recipes: {a: {train.layer_decay: 2.0}}}", "tune.recipes.a: train.layer_decay must be in (0, 1]"),
    ("tune: {recipes: {a: {train.lr: 1.0e-3}}}", "tune.recipes.a (train.lr): tune.space searches this key too"),
    ("tune: {space: []}", "tune.space and tune.recipes: nothing to tune"),
])
def test_bad_tune_config_is_named(text, message):
    from textclf.tuning.space import check

    with pytest.raises(ConfigError, match=re.escape(message)):
        check(compose(text, overrides=["model=tiny"]))
