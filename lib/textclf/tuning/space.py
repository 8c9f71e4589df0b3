"""The search space: `tune.space` as Optuna distributions, checked against the config schema,
and a trial's parameters applied to the resolved config."""
from __future__ import annotations

import copy
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from textclf.config import TextclfConfig, to_dict
from textclf.errors import ConfigError

TUNABLE = ("train.", "model.")
FIXED = {"model.backbone", "model.max_length"}  # the shards were tokenized for these


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
