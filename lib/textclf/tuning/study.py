"""Hyperparameter search with Optuna, one trial per Metaflow task.

The study lives in an Optuna RDB storage (sqlite beside the run's artifacts by default), so a
`resume` finds every trial told so far. Each trial loads the study, asks for parameters, trains
with them on the shards preprocessing already wrote, and tells the result: trials running side
by side share the study through the storage, and every ask sees the trials finished before it.
A trial trains `tune.seeds` times (seeds train.seed, +1, ...) and tells the mean validation
score; the per-seed scores and their std stay on the trial. Every trial is also an MLflow child
run of the study's parent run.
"""
from __future__ import annotations

import os
import time
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from textclf.config import TextclfConfig, TuneConfig, from_dict
from textclf.errors import ConfigError, TextclfError
from textclf.storage import is_remote, join, write_bytes
from textclf.tuning.seeds import spread, train_seed
from textclf.tuning.space import search_space, trial_config
from textclf.tuning.tracking import log_trial

FAIL_SLOTS_ENV = "TEXTCLF_TUNE_FAIL_SLOTS"  # fault injection for tests of `resume`: "0,3" fails those slots

optuna.logging.set_verbosity(optuna.logging.WARNING)


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler stops the study once its grid is walked, which only `Study.optimize`
    allows (a `tell` raises); here TuneFlow's budget, `tune.max_trials`, decides when trials stop."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: TrialState,
                    values: Any) -> None:
        return None


def make_sampler(tune: TuneConfig, space: dict[str, BaseDistribution], seed: int) -> optuna.samplers.BaseSampler:
    """Seeded per trial slot: trials asked side by side must not draw the same numbers. The grid is
    the exception: its seed shuffles the grid and a trial's number picks its point, so every slot
    needs the same order (else two slots can land on one point and miss another)."""
    if tune.sampler == "grid":
        return AskTellGridSampler({k: list(d.choices) for k, d in space.items()}, seed=tune.seed)
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.trials_per_round, constant_liar=True)


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


def _earlier_attempt(study: optuna.Study, slot: int) -> dict[str, Any] | None:
    """On `resume` a slot runs again. An earlier attempt that finished (its task was stopped after
    the study was told, when a sibling branch failed) is its result, not trained again; one that did
    not is failed and its parameters retried."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("slot") == slot]
    if not earlier:
        return None
    last = earlier[-1]
    if last.state == TrialState.COMPLETE and "result" in last.user_attrs:
        return last.user_attrs["result"]
    if last.state == TrialState.RUNNING:
        study.tell(last.number, state=TrialState.FAIL)
    study.enqueue_trial(last.params, user_attrs={"retry_of": last.number})
    return None


def run_trial(cfg_dict: dict[str, Any], ref: dict[str, str], manifest: dict[str, Any], run_key: str, slot: int,
              parent_run: str | None, concurrent: int = 1) -> dict[str, Any]:
    """Ask, train on the shards, tell. A failure is told as FAIL, logged, and raised. `concurrent`:
    trials sharing this machine's cores at once (the training threads are split between them)."""
    cfg = from_dict(cfg_dict)
    space = search_space(cfg)
    study = load_study(ref, cfg.tune, space, seed=slot)
    finished = _earlier_attempt(study, slot)
    if finished is not None:
        print(f"trial {finished['number']} (slot {slot}) finished before this resume: not trained again", flush=True)
        log_trial(cfg, parent_run, finished["number"], finished["params"], finished)  # if its task was stopped first
        return finished
    trial = study.ask(space)
    trial.set_user_attr("slot", slot)
    params = dict(trial.params)
    print(f"trial {trial.number} (slot {slot}): {params}", flush=True)
    try:
        if str(slot) in os.environ.get(FAIL_SLOTS_ENV, "").split(","):
            raise TextclfError(f"trial {trial.number}: failure injected by {FAIL_SLOTS_ENV}")
        records = [train_seed(cfg_dict, params, manifest, run_key, f"trial-{trial.number:03d}", i,
                              concurrent)
                   for i in range(cfg.tune.seeds)]
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        log_trial(cfg, parent_run, trial.number, params, None)
        raise
    scores = spread([r["best_val"] for r in records])
    result = {"number": trial.number, "slot": slot, "params": params, "value": scores["mean"], "std": scores["std"],
              "metric": records[0]["selection_metric"],
              "seeds": [{"seed": r["seed"], "value": r["best_val"], "best_epoch": r["best_epoch"], "model": r["model"],
                         "history": r["history"]} for r in records]}
    trial.set_user_attr("val_scores", scores["scores"])
    trial.set_user_attr("val_std", scores["std"])
    trial.set_user_attr("result", result)  # what a resume returns for this slot instead of training it again
    study.tell(trial, scores["mean"])
    log_trial(cfg, parent_run, trial.number, params, result)
    return result


def close_study(ref: dict[str, str], cfg: TextclfConfig) -> optuna.Study:
    """Fail trials left RUNNING by killed tasks, and return the study; it needs one finished trial."""
    study = load_study(ref, cfg.tune, search_space(cfg))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise TextclfError("no trial finished; see the trial steps' logs")
    return study


def best_config(cfg_dict: dict[str, Any], params: dict[str, Any], verdict: str = "") -> str:
    """The data, model and train sections with the best parameters: a config TrainFlow takes as is,
    `--config-value config "$(cat best.yaml)"` or `--config config best.yaml`. `verdict`: a header
    line on how the winner scored (`final.describe`)."""
    best = trial_config(cfg_dict, params)
    body = {section: best[section] for section in ("data", "model", "train")}
    header = "# Best TuneFlow trial: " + ", ".join(f"{k}={v}" for k, v in params.items()) + "\n"
    if verdict:
        header += f"# {verdict}\n"
    return header + yaml.safe_dump(body, sort_keys=False)


def write_best_config(text: str, root: str) -> str:
    uri = join(root, "best.yaml")
    write_bytes(uri, text.encode())
    return uri
