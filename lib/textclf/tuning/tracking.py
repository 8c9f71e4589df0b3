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
              record: dict[str, Any] | None) -> None:
    from mlflow.entities import Metric, Param

    if parent is None:
        return
    c, experiment_id = experiment(cfg.registry)
    run = c.create_run(experiment_id, run_name=f"trial-{number:03d}",
                       tags={"mlflow.parentRunId": parent, "textclf.trial": str(number)})
    now = int(time.time() * 1000)
    metrics = []
    if record is not None:
        metrics.append(Metric(f"best_val_{record['selection_metric']}", record["best_val"], now, 0))
        for epoch in record["history"]:
            metrics += [Metric(k, float(v), now, epoch["epoch"]) for k, v in epoch.items()
                        if k.startswith("val_") and isinstance(v, (int, float)) and math.isfinite(v)]
    c.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()], metrics=metrics)
    c.set_terminated(run.info.run_id, "FINISHED" if record is not None else "FAILED")


def finish_parent_run(cfg: TextclfConfig, parent: str, study: optuna.Study, files: list[str],
                      folds: dict[str, Any] | None) -> None:
    from mlflow.entities import Metric, Param

    c = client(cfg.registry)
    now = int(time.time() * 1000)
    metrics = [Metric("best_value", study.best_value, now, 0)]
    if folds:
        metrics += [Metric("kfold_mean", folds["mean"], now, 0), Metric("kfold_std", folds["std"], now, 0)]
    c.log_batch(parent, metrics=metrics, params=[Param(f"best.{k}", str(v)) for k, v in study.best_params.items()])
    for path in files:
        c.log_artifact(parent, path)
    c.set_terminated(parent, "FINISHED")
