"""The study in MLflow: a parent run for the study, a child run per trial."""
from __future__ import annotations

import math
import time
from typing import Any

import optuna

from textclf.config import TextclfConfig, to_dict
from textclf.registry.tracking import client, experiment


def start_parent_run(cfg: TextclfConfig, name: str) -> str:
    """The study's MLflow run; trials become its children."""
    from mlflow.entities import Param

    c, experiment_id = experiment(cfg.registry)
    run = c.create_run(experiment_id, run_name=name, tags={"textclf.flow": "TuneFlow"})
    tune = to_dict(cfg)["tune"]
    c.log_batch(run.info.run_id, params=[Param(f"tune.{k}", str(v)[:500]) for k, v in tune.items()])
    return run.info.run_id


def log_trial(cfg: TextclfConfig, parent: str | None, number: int, params: dict[str, Any],
              result: dict[str, Any] | None) -> None:
    """The trial's child run: the mean validation score it told (`result`, `run_trial`'s), its std,
    each seed's at step = seed, and the validation curves (prefixed `seed<s>_` when it trained more
    than once); no result: FAILED. Once per trial: a resumed slot whose trial had finished logs it
    again, and the child its stopped task may have left unfinished is completed, not doubled."""
    from mlflow.entities import Metric, Param

    if parent is None:
        return
    c, experiment_id = experiment(cfg.registry)
    found = c.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}' "
                                                         f"and tags.`textclf.trial` = '{number}'")
    if any(r.info.status == "FINISHED" for r in found):
        return
    run_id = found[0].info.run_id if found else c.create_run(
        experiment_id, run_name=f"trial-{number:03d}", tags={"mlflow.parentRunId": parent, "textclf.trial": str(number)}
    ).info.run_id
    now = int(time.time() * 1000)
    metrics = []
    if result:
        name = f"best_val_{result['metric']}"
        metrics += [Metric(name, result["value"], now, 0), Metric(f"{name}_std", result["std"], now, 0)]
        for seed in result["seeds"]:
            metrics.append(Metric(f"{name}_by_seed", seed["value"], now, seed["seed"]))
            prefix = f"seed{seed['seed']}_" if len(result["seeds"]) > 1 else ""
            for epoch in seed["history"]:
                metrics += [Metric(prefix + k, float(v), now, epoch["epoch"]) for k, v in epoch.items()
                            if k.startswith("val_") and isinstance(v, (int, float)) and math.isfinite(v)]
    c.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()], metrics=metrics)
    c.set_terminated(run_id, "FINISHED" if result else "FAILED")


def _spread_metrics(name: str, scores: dict[str, Any], now: int) -> list:
    """`<name>_mean`, `<name>_std`, and the interval's `<name>_ci_low` / `_ci_high` when there is one."""
    from mlflow.entities import Metric

    values = {f"{name}_mean": scores["mean"], f"{name}_std": scores["std"]}
    if math.isfinite(scores["low"]):
        values.update({f"{name}_ci_low": scores["low"], f"{name}_ci_high": scores["high"]})
    return [Metric(k, v, now, 0) for k, v in values.items()]


def finish_parent_run(cfg: TextclfConfig, parent: str, study: optuna.Study, files: list[str],
                      folds: dict[str, Any] | None, final: dict[str, Any] | None) -> None:
    """The study's verdict: the best trial's validation value, the folds' spread, and the winner's
    validation, test and test's calibration error over the final seeds (each seed's at step = its seed)."""
    from mlflow.entities import Metric, Param

    from textclf.tuning.final import SPREAD

    c = client(cfg.registry)
    now = int(time.time() * 1000)
    metrics = [Metric("best_value", study.best_value, now, 0)]
    if folds:
        metrics += _spread_metrics("kfold", folds, now)
    if final:
        names = {"val": f"final_val_{final['metric']}", "test": f"final_test_{final['metric']}",
                 "ece": "final_test_ece", "ece_uncalibrated": "final_test_ece_uncalibrated"}
        for key in (k for k in SPREAD if k in final):
            metrics += _spread_metrics(names[key], final[key], now)
            metrics += [Metric(f"{names[key]}_by_seed", value, now, seed)
                        for seed, value in zip(final["seeds"], final[key]["scores"])]
    c.log_batch(parent, metrics=metrics, params=[Param(f"best.{k}", str(v)) for k, v in study.best_params.items()])
    for path in files:
        c.log_artifact(parent, path)
    c.set_terminated(parent, "FINISHED")
