"""Hyperparameter search with Optuna, one trial per Metaflow task.

The study lives in an Optuna RDB storage (sqlite beside the run's artifacts by default), so a
`resume` finds every trial told so far. Each trial loads the study, asks for parameters, trains
with them on the shards preprocessing already wrote, and tells the result: trials running side
by side share the study through the storage, and every ask sees the trials finished before it.
Every trial is also an MLflow child run of the study's parent run.
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from textclf.config import TextclfConfig, TuneConfig, from_dict, to_dict
from textclf.errors import ConfigError, TextclfError
from textclf.storage import filesystem, is_remote, join, write_bytes

TUNABLE = ("train.", "model.")
FIXED = {"model.backbone", "model.max_length"}  # the shards were tokenized for these
FAIL_SLOTS_ENV = "TEXTCLF_TUNE_FAIL_SLOTS"  # fault injection for tests of `resume`: "0,3" fails those slots

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------- search space

def search_space(cfg: TextclfConfig) -> dict[str, BaseDistribution]:
    """`tune.space` as Optuna distributions; a clear ConfigError names a bad entry."""
    known = to_dict(cfg)
    out: dict[str, BaseDistribution] = {}
    for i, param in enumerate(cfg.tune.space):
        key = param.key
        where = f"tune.space[{i}] ({key})"
        if not key.startswith(TUNABLE) or key in FIXED:
            raise ConfigError(f"{where}: only train.* and model.* keys other than {sorted(FIXED)} can be tuned "
                              f"(the data is preprocessed once for all trials)")
        node = known
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{where}: no such config key")
            node = node[part]
        if key in out:
            raise ConfigError(f"{where}: the key appears twice")
        ranged = param.low is not None or param.high is not None
        if (param.choices is not None) == ranged:
            raise ConfigError(f"{where}: give either choices or low and high")
        if param.choices is not None:
            if not param.choices:
                raise ConfigError(f"{where}: an empty list of choices")
            out[key] = CategoricalDistribution(param.choices)
            continue
        low, high = param.low, param.high
        if low is None or high is None or not low < high:
            raise ConfigError(f"{where}: low must be below high ({low}, {high})")
        if isinstance(low, int) and isinstance(high, int) and not isinstance(node, float):
            out[key] = IntDistribution(low, high, log=param.log, step=int(param.step or 1))
        else:
            out[key] = FloatDistribution(float(low), float(high), log=param.log, step=param.step)
    if not out:
        raise ConfigError("tune.space: nothing to tune")
    return out


def check(cfg: TextclfConfig) -> None:
    t = cfg.tune
    if t.sampler not in {"tpe", "random", "grid"}:
        raise ConfigError(f"tune.sampler must be one of ['grid', 'random', 'tpe'], not {t.sampler!r}")
    for name in ("rounds", "trials_per_round", "max_trials"):
        if getattr(t, name) < 1:
            raise ConfigError(f"tune.{name} must be >= 1")
    if t.kfold == 1 or t.kfold < 0:
        raise ConfigError(f"tune.kfold must be 0 (off) or >= 2, not {t.kfold}")
    if t.kfold and cfg.data.augment.enabled:
        raise ConfigError("tune.kfold cannot be combined with data.augment.enabled: augmented copies would "
                          "end up in the validation folds")
    space = search_space(cfg)
    if t.sampler == "grid" and not all(isinstance(d, CategoricalDistribution) for d in space.values()):
        ranges = [k for k, d in space.items() if not isinstance(d, CategoricalDistribution)]
        raise ConfigError(f"tune.sampler=grid needs a list of values (choices) for every space entry; ranges: {ranges}")


def make_sampler(tune: TuneConfig, space: dict[str, BaseDistribution], seed: int) -> optuna.samplers.BaseSampler:
    """Seeded per trial slot: trials asked side by side must not draw the same numbers."""
    if tune.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(d.choices) for k, d in space.items()}, seed=seed)
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.trials_per_round, constant_liar=True)


# --------------------------------------------------------------------------- the study

def study_ref(cfg: TextclfConfig, root: str, name: str) -> dict[str, str]:
    """Where the study lives: tune.storage, or sqlite in the run's artifact folder."""
    if cfg.tune.storage:
        return {"storage": cfg.tune.storage, "name": name}
    if is_remote(root):
        raise ConfigError(f"tune.storage: an Optuna RDB URL is needed with a remote artifact root ({root}); "
                          f"sqlite cannot be shared there")
    os.makedirs(root, exist_ok=True)
    return {"storage": f"sqlite:///{join(root, 'study.db')}", "name": name}


def load_study(ref: dict[str, str], tune: TuneConfig, space: dict[str, BaseDistribution],
               seed: int = 0) -> optuna.Study:
    kwargs = {"connect_args": {"timeout": 120}} if ref["storage"].startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(ref["storage"], engine_kwargs=kwargs)
    return optuna.create_study(study_name=ref["name"], storage=storage, direction="maximize", load_if_exists=True,
                               sampler=make_sampler(tune, space, tune.seed * 100_003 + seed))


def slots(tune: TuneConfig) -> int:
    return min(tune.max_trials, tune.rounds * tune.trials_per_round)


def has_budget(tune: TuneConfig, slot: int, started: float) -> bool:
    """Slot `slot` (round-major: round x trials_per_round + branch) may start now."""
    late = tune.max_minutes > 0 and time.time() - started > tune.max_minutes * 60
    return slot < slots(tune) and not late


def _retry_earlier_attempt(study: optuna.Study, slot: int) -> None:
    """On `resume` a slot runs again: its earlier attempt is failed and its parameters retried."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("slot") == slot]
    if not earlier:
        return
    last = earlier[-1]
    if last.state == TrialState.RUNNING:
        study.tell(last.number, state=TrialState.FAIL)
    study.enqueue_trial(last.params, user_attrs={"retry_of": last.number})


def trial_config(cfg: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The resolved config with the trial's dotted overrides applied."""
    out = copy.deepcopy(cfg)
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out


def run_trial(cfg_dict: dict[str, Any], ref: dict[str, str], manifest: dict[str, Any], run_key: str, slot: int,
              parent_run: str | None) -> dict[str, Any]:
    """Ask, train on the shards, tell. A failure is told as FAIL, logged, and raised."""
    from textclf.training import run_paths, train_model

    cfg = from_dict(cfg_dict)
    space = search_space(cfg)
    study = load_study(ref, cfg.tune, space, seed=slot)
    _retry_earlier_attempt(study, slot)
    trial = study.ask(space)
    trial.set_user_attr("slot", slot)
    params = dict(trial.params)
    trial_cfg = from_dict(trial_config(cfg_dict, params))
    paths = run_paths(trial_cfg, "TuneFlow", f"{run_key}/trial-{trial.number:03d}")
    print(f"trial {trial.number} (slot {slot}): {params}", flush=True)
    try:
        if str(slot) in os.environ.get(FAIL_SLOTS_ENV, "").split(","):
            raise TextclfError(f"trial {trial.number}: failure injected by {FAIL_SLOTS_ENV}")
        record = train_model(trial_cfg, manifest, paths)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        log_trial(cfg, parent_run, trial.number, params, None)
        raise
    study.tell(trial, record["best_val"])
    log_trial(cfg, parent_run, trial.number, params, record)
    return {"number": trial.number, "slot": slot, "params": params, "value": record["best_val"],
            "metric": record["selection_metric"], "best_epoch": record["best_epoch"], "model": paths["model"]}


def close_study(ref: dict[str, str], cfg: TextclfConfig) -> optuna.Study:
    """Fail trials left RUNNING by killed tasks, and return the study; it needs one finished trial."""
    study = load_study(ref, cfg.tune, search_space(cfg))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TextclfError("no trial finished; see the trial steps' logs")
    return study


def best_config(cfg_dict: dict[str, Any], params: dict[str, Any]) -> str:
    """The data, model and train sections with the best parameters: a config TrainFlow takes as is,
    `--config-value config "$(cat best.yaml)"` or `--config config best.yaml`."""
    best = trial_config(cfg_dict, params)
    body = {section: best[section] for section in ("data", "model", "train")}
    header = "# Best TuneFlow trial: " + ", ".join(f"{k}={v}" for k, v in params.items()) + "\n"
    return header + yaml.safe_dump(body, sort_keys=False)


def write_best_config(text: str, root: str) -> str:
    uri = join(root, "best.yaml")
    write_bytes(uri, text.encode())
    return uri


# --------------------------------------------------------------------------- k-fold

def fold_manifest(manifest: dict[str, Any], k: int, fold: int, out_uri: str, seed: int) -> dict[str, Any]:
    """Train+val regrouped into k stratified folds by a seeded hash of the row id; `fold` validates.

    Test stays untouched: cross-validation measures the config, the test split the final model.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for split in ("train", "val"):
        fs, path = filesystem(manifest["shards"][split])
        tables.append(pq.read_table(path, filesystem=fs))
    table = pa.concat_tables(tables)
    frame = table.select(["row_id", "label"]).to_pandas()
    frame["stratum"] = frame["label"].map(str)
    frame["h"] = frame["row_id"].map(lambda r: hashlib.blake2b(f"fold:{seed}:{r}".encode(), digest_size=8).hexdigest())
    order = frame.sort_values(["stratum", "h"], kind="stable")
    in_fold = np.zeros(len(frame), dtype=bool)
    in_fold[order.index[order.groupby("stratum").cumcount().to_numpy() % k == fold]] = True
    shards = dict(manifest["shards"])
    for split, mask in (("train", ~in_fold), ("val", in_fold)):
        shards[split] = join(out_uri, f"fold-{fold}", split)
        fs, path = filesystem(shards[split])
        fs.makedirs(path, exist_ok=True)
        pq.write_table(table.filter(pa.array(mask)), f"{path}/part-00000.parquet", filesystem=fs)
    return {**manifest, "shards": shards}


def fold_summary(scores: list[float]) -> dict[str, float]:
    arr = np.asarray(scores, dtype=float)
    return {"folds": len(arr), "mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "scores": arr.tolist()}


# --------------------------------------------------------------------------- MLflow

def _client(cfg: TextclfConfig):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=cfg.registry.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.registry.experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    try:
        return client, client.create_experiment(cfg.registry.experiment, artifact_location=cfg.registry.artifact_location)
    except Exception:  # created by a trial beside this one
        return client, client.get_experiment_by_name(cfg.registry.experiment).experiment_id


def start_parent_run(cfg: TextclfConfig, name: str) -> str:
    """The study's MLflow run; trials become its children."""
    from mlflow.entities import Param

    client, experiment = _client(cfg)
    run = client.create_run(experiment, run_name=name, tags={"textclf.flow": "TuneFlow"})
    tune = to_dict(cfg)["tune"]
    client.log_batch(run.info.run_id, params=[Param(f"tune.{k}", str(v)[:500]) for k, v in tune.items()])
    return run.info.run_id


def log_trial(cfg: TextclfConfig, parent: str | None, number: int, params: dict[str, Any],
              record: dict[str, Any] | None) -> None:
    from mlflow.entities import Metric, Param

    if parent is None:
        return
    client, experiment = _client(cfg)
    run = client.create_run(experiment, run_name=f"trial-{number:03d}",
                            tags={"mlflow.parentRunId": parent, "textclf.trial": str(number)})
    now = int(time.time() * 1000)
    metrics = []
    if record is not None:
        metrics.append(Metric(f"best_val_{record['selection_metric']}", record["best_val"], now, 0))
        for epoch in record["history"]:
            metrics += [Metric(k, float(v), now, epoch["epoch"]) for k, v in epoch.items()
                        if k.startswith("val_") and isinstance(v, (int, float)) and math.isfinite(v)]
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()], metrics=metrics)
    client.set_terminated(run.info.run_id, "FINISHED" if record is not None else "FAILED")


def finish_parent_run(cfg: TextclfConfig, parent: str, study: optuna.Study, files: list[str],
                      folds: dict[str, Any] | None) -> None:
    from mlflow.entities import Metric, Param

    client, _ = _client(cfg)
    now = int(time.time() * 1000)
    metrics = [Metric("best_value", study.best_value, now, 0)]
    if folds:
        metrics += [Metric("kfold_mean", folds["mean"], now, 0), Metric("kfold_std", folds["std"], now, 0)]
    client.log_batch(parent, metrics=metrics, params=[Param(f"best.{k}", str(v)) for k, v in study.best_params.items()])
    for path in files:
        client.log_artifact(parent, path)
    client.set_terminated(parent, "FINISHED")


# --------------------------------------------------------------------------- plots

def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optimisation history, parameter importances, parallel coordinates (matplotlib figures).

    Importances need two finished trials that differ; with fewer that figure is left out.
    """
    from optuna.visualization import matplotlib as vis

    plots = {"optimisation history": vis.plot_optimization_history,
             "parameter importances": vis.plot_param_importances,
             "parallel coordinates": vis.plot_parallel_coordinate}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                out[name] = plot(study).get_figure()
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                print(f"{name}: not drawn ({exc})")
    return out


def trials_table(study: optuna.Study) -> tuple[list[str], list[list[str]]]:
    names = sorted({k for t in study.trials for k in t.params})
    rows = [[str(t.number), t.state.name, "" if t.value is None else f"{t.value:.4f}",
             *[_fmt(t.params.get(k)) for k in names]] for t in study.trials]
    return ["trial", "state", "value", *names], rows


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
