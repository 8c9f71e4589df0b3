"""The selection protocol in TuneFlow: recipes compared on validation over seeds, the winner then
scored once on test, and the test split unreadable until then.

The acceptance run puts `support/sealed_split` on PYTHONPATH: its sitecustomize moves the run's
test shard aside at the start of every step process after preprocessing, and only `final` moves it
back. A read before the choice, by any reader, would find no file and fail the run.
"""
from __future__ import annotations

import base64
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SANDBOX, TINY, latest_run, run_flow
from textclf.config import compose
from textclf.tuning.sealing import SealedError, sealed, unsealed
from textclf.tuning.seeds import spread
from textclf.tuning.space import search_space
from textclf.tuning.study import load_study

RIG = ROOT / "tests" / "support" / "sealed_split"
RECIPES = f"""
overrides: [{', '.join(TINY.split())}, train.threads_per_proc=1, data.dask.scheduler_address=sync,
            tune.sampler=grid, tune.rounds=1, tune.trials_per_round=2, tune.max_trials=2, tune.seeds=2,
            tune.final_seeds=2]
tune:
  space: []
  recipes:
    plain: {{}}
    smooth: {{train.label_smoothing: 0.1, model: {{pooling: cls}}}}
"""


def rig_env(root: Path, log: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(RIG), os.environ.get("PYTHONPATH", "")]),
            "TEXTCLF_SEAL_ROOT": str(root), "TEXTCLF_SEAL_LOG": str(log), "TEXTCLF_ARTIFACT_ROOT": str(root)}


def test_the_sealed_manifest_names_the_rule():
    manifest = {"shards": {"train": "t", "val": "v", "test": "secret"}, "rows": 3}
    shut = pickle.loads(pickle.dumps(sealed(manifest)))  # a Metaflow artifact
    assert "test" not in shut["shards"] and json.loads(json.dumps(shut))["shards"] == {"train": "t", "val": "v"}
    with pytest.raises(SealedError, match="sealed until TuneFlow's final step"):
        shut["shards"]["test"]
    assert unsealed(shut) == manifest


def test_spread_is_mean_std_and_a_t_interval():
    s = spread([0.8, 0.9, 1.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.9) and s["std"] == pytest.approx(0.1)
    half = 4.302653 * 0.1 / math.sqrt(3)  # t(0.975, 2)
    assert (s["low"], s["high"]) == pytest.approx((0.9 - half, 0.9 + half))
    assert math.isnan(spread([0.7])["low"])


def test_the_grid_walks_every_recipe_once_across_slots(tmp_path):
    """Each slot loads the study with its own sampler; the grid's points must not repeat between them."""
    cfg = compose("tune: {sampler: grid, space: [], recipes: {a: {}, b: {train.fgm: 0.1}, c: {model.pooling: cls}}}",
                  overrides=["model=tiny"])
    ref, space, walked = {"storage": f"sqlite:///{tmp_path / 'study.db'}", "name": "grid"}, search_space(cfg), []
    for slot in range(3):
        study = load_study(ref, cfg.tune, space, seed=slot)
        trial = study.ask(space)
        walked.append(trial.params["recipe"])
        study.tell(trial, 0.5)  # Optuna's own grid sampler raises here once the grid is walked
    assert sorted(walked) == ["a", "b", "c"]


def test_a_resumed_slot_that_had_finished_returns_its_result_and_trains_nothing(tmp_path):
    """When a sibling branch fails, Metaflow stops a trial task that may already have told the study;
    `resume` then runs that slot again. It must get the finished trial back, not a second training and
    a second COMPLETE trial (what the fresh-clone CI once caught in test_tune_flow), and finish the
    trial's MLflow child run the stopped task left RUNNING, not add a second one (caught there next)."""
    from textclf.config import to_dict
    from textclf.registry.tracking import experiment
    from textclf.tuning.study import run_trial
    from textclf.tuning.tracking import start_parent_run

    cfg = compose("tune: {sampler: grid, space: [], recipes: {a: {}, b: {train.fgm: 0.1}}}",
                  overrides=["model=tiny", f"registry.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    ref, space = {"storage": f"sqlite:///{tmp_path / 'study.db'}", "name": "resumed"}, search_space(cfg)
    study = load_study(ref, cfg.tune, space, seed=0)
    trial = study.ask(space)
    result = {"number": trial.number, "slot": 0, "params": dict(trial.params), "value": 0.9, "std": 0.0,
              "metric": "accuracy", "seeds": [{"seed": 42, "value": 0.9, "best_epoch": 1, "model": "m",
                                               "history": [{"epoch": 1, "val_accuracy": 0.9}]}]}
    trial.set_user_attr("slot", 0)
    trial.set_user_attr("result", result)
    study.tell(trial, 0.9)
    parent = start_parent_run(cfg, "study")
    c, experiment_id = experiment(cfg.registry)
    c.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "textclf.trial": str(trial.number)})  # stopped
    no_data = {"shards": {}}  # a training would fail on it
    for _ in range(2):  # and a second resume changes nothing
        assert run_trial(to_dict(cfg), ref, no_data, "1", 0, parent) == result
    trials = load_study(ref, cfg.tune, space, seed=0).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]
    children = c.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.status for r in children] == ["FINISHED"]
    assert children[0].data.metrics == {"best_val_accuracy": 0.9, "best_val_accuracy_std": 0.0,
                                        "best_val_accuracy_by_seed": 0.9, "val_accuracy": 0.9}


def test_the_rig_makes_the_test_split_unreadable_to_a_step_before_final(tmp_path):
    """The control: the same rig, a pyarrow read (the one shard reader) from a `trial` process fails,
    and from a `final` process of the same run succeeds."""
    shards = tmp_path / "TuneFlow" / "77" / "data" / "shards"
    (shards / "test").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"], "label": [0]}), shards / "test" / "part-00000.parquet")
    log = tmp_path / "seal.jsonl"
    read = f"from textclf.data.shards import read_split; print(len(read_split({str(shards / 'test')!r})))"

    def as_step(step):
        return subprocess.run([sys.executable, "-c", read, "step", step, "--run-id", "77"], capture_output=True,
                              text=True, env={**os.environ, **rig_env(tmp_path, log)})

    early = as_step("trial")
    assert early.returncode != 0 and "FileNotFoundError" in early.stderr, early.stderr[-2000:]
    late = as_step("final")
    assert late.returncode == 0 and late.stdout.strip() == "1", late.stderr[-2000:]
    assert [json.loads(line)["test"] for line in log.read_text().splitlines()] == ["sealed", "readable"]


@pytest.fixture(scope="module")
def selected(toy_csv, tmp_path_factory):
    root, log = tmp_path_factory.mktemp("sealed-artifacts"), SANDBOX / "seal.jsonl"
    run_flow("tune_flow.py", RECIPES.replace("overrides: [", f"overrides: [data.source={toy_csv}, "),
             env=rig_env(root, log))
    run = latest_run("TuneFlow")
    assert run.successful
    return {"run": run, "log": [json.loads(line) for line in log.read_text().splitlines()]}


@pytest.mark.integration
def test_no_step_reads_test_before_the_choice(selected):
    """Every step process between preprocessing and `final` ran with the test shard moved away, and
    the run still succeeded; `final` had it back and scored it, once per seed."""
    states = {}
    for line in selected["log"]:
        states.setdefault(line["step"], set()).add(line["test"])
    assert states.pop("final") == {"readable"}
    assert states.pop("start") == states.pop("preprocess") == {"before preprocessing"}
    assert {"trial", "collect", "best_trial", "chosen", "finals", "final_join", "report", "end"} <= set(states)
    assert all(s == {"sealed"} for s in states.values()), states
    run = selected["run"]
    assert "test" not in run["preprocess"].task["manifest"].data["shards"]  # what trials were handed
    final = run["end"].task["final_result"].data
    assert final["seeds"] == [42, 43] and final["test"]["n"] == final["val"]["n"] == 2
    assert all(0.5 < x <= 1 for x in final["test"]["scores"] + final["val"]["scores"])
    assert final["test"]["low"] <= final["test"]["mean"] <= final["test"]["high"]
    assert final["ece"]["n"] == final["ece_uncalibrated"]["n"] == 2  # calibration, after scaling and at T = 1
    assert all(0 <= x <= 1 for x in final["ece"]["scores"] + final["ece_uncalibrated"]["scores"])


@pytest.mark.integration
def test_recipes_are_compared_on_validation_over_seeds(selected):
    end = selected["run"]["end"].task
    ref = end["study"].data
    study = optuna.load_study(study_name=ref["name"], storage=ref["storage"])
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["recipe"] for t in trials) == ["plain", "smooth"]  # the grid walked both
    for t in trials:
        assert len(t.user_attrs["val_scores"]) == 2 and t.value == pytest.approx(sum(t.user_attrs["val_scores"]) / 2)
    assert end["best"].data["params"]["recipe"] in {"plain", "smooth"}
    winner = next(t for t in trials if t.number == end["best"].data["number"])
    finals = sorted((t["final_seed"].data for t in selected["run"]["final"]), key=lambda s: s["seed"])
    assert all(s["reused"] and f"trial-{winner.number:03d}" in s["model"] for s in finals)  # not trained again
    assert [s["val"] for s in finals] == winner.user_attrs["val_scores"]
    best = end["best_config"].data
    assert Path(end["best_config_uri"].data).read_text() == best
    header = best.splitlines()[1]
    assert header.startswith("# The winner over 2 seeds: validation accuracy") and "test accuracy" in header
    if end["best"].data["params"]["recipe"] == "smooth":
        assert "label_smoothing: 0.1" in best and "pooling: cls" in best


@pytest.mark.integration
def test_the_report_shows_test_for_the_winner_only(selected):
    from mlflow import MlflowClient

    run = selected["run"]
    end = run["end"].task
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    parent = client.get_run(end["mlflow_run"].data)
    metrics = parent.data.metrics
    assert metrics["final_test_accuracy_mean"] == pytest.approx(end["final_result"].data["test"]["mean"])
    assert {"final_test_accuracy_std", "final_test_accuracy_ci_low", "final_val_accuracy_mean"} <= set(metrics)
    by_seed = client.get_metric_history(parent.info.run_id, "final_test_accuracy_by_seed")
    assert sorted(m.step for m in by_seed) == [42, 43]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:
        assert not [k for k in child.data.metrics if "test" in k]
        assert "best_val_accuracy_std" in child.data.metrics
    pattern = f"TuneFlow/runs/{run.id}/steps/report/tasks/*/cards/*.html"  # beside the datastore or the cwd
    pages = [*SANDBOX.rglob(pattern), *(ROOT / ".metaflow").rglob(pattern)]
    blob = re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', pages[0].read_text()).group(1)
    components = json.loads(base64.b64decode(blob))
    text = json.dumps(components)
    assert "The winner on test" in text and "95 % t-interval" in text
    columns = [c["columns"] for c in _walk(components) if c.get("type") == "table"]
    trials, seeds = (next(c for c in columns if c[0] == first) for first in ("trial", "seed"))
    assert "validation" in trials and not [c for c in trials if "test" in c]  # every candidate: validation only
    assert seeds == ["seed", "validation accuracy", "test accuracy", "test ECE", "test ECE at T = 1"]  # the winner: test too


def _walk(node):
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            yield from _walk(child)
