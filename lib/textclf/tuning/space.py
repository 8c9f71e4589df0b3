"""The search space: `tune.space` and `tune.recipes` as Optuna distributions, checked against the
config schema, and a trial's parameters applied to the resolved config.

A recipe is a named bundle of overrides (`{fgm: {train.lr: 3.0e-5, train.fgm: 1.0}}`): users compare
such bundles as wholes, so all of them together are one categorical dimension, `recipe`, whose
value a trial's config expands into its overrides."""
from __future__ import annotations

import copy
from typing import Any

from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from textclf.config import TextclfConfig, from_dict, to_dict
from textclf.config_checks import check as check_config
from textclf.errors import ConfigError

TUNABLE = ("train.", "model.")
FIXED = {"model.backbone", "model.max_length"}  # the shards were tokenized for these
RECIPE = "recipe"  # the dimension tune.recipes becomes


def _tunable(known: dict[str, Any], key: str, where: str) -> Any:
    """The current value of a key a trial may set; a ConfigError names any other key."""
    if not key.startswith(TUNABLE) or key in FIXED:
        raise ConfigError(f"{where}: only train.* and model.* keys other than {sorted(FIXED)} can be tuned "
                          f"(the data is preprocessed once for all trials)")
    node = known
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{where}: no such config key")
        node = node[part]
    return node


def recipe_overrides(recipe: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A recipe as dotted keys: `{train.lr: 1}` and `{train: {lr: 1}}` alike."""
    out = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            out.update(recipe_overrides(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def search_space(cfg: TextclfConfig) -> dict[str, BaseDistribution]:
    """`tune.space` and `tune.recipes` as Optuna distributions; a clear ConfigError names a bad entry."""
    known = to_dict(cfg)
    out: dict[str, BaseDistribution] = {}
    for i, param in enumerate(cfg.tune.space):
        key = param.key
        where = f"tune.space[{i}] ({key})"
        node = _tunable(known, key, where)
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
    for name, recipe in cfg.tune.recipes.items():
        for key in recipe_overrides(recipe):
            _tunable(known, key, f"tune.recipes.{name} ({key})")
            if key in out:
                raise ConfigError(f"tune.recipes.{name} ({key}): tune.space searches this key too; drop it there")
    if cfg.tune.recipes:
        out[RECIPE] = CategoricalDistribution(list(cfg.tune.recipes))
    if not out:
        raise ConfigError("tune.space and tune.recipes: nothing to tune")
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
    if t.seeds < 1:
        raise ConfigError(f"tune.seeds must be >= 1, not {t.seeds}")
    if t.final_seeds == 1 or t.final_seeds < 0:
        raise ConfigError(f"tune.final_seeds must be 0 (off) or >= 2 (a spread needs two), not {t.final_seeds}")
    if t.kfold and cfg.data.augment.enabled:
        raise ConfigError("tune.kfold cannot be combined with data.augment.enabled: augmented copies would "
                          "end up in the validation folds")
    space = search_space(cfg)
    if t.sampler == "grid" and not all(isinstance(d, CategoricalDistribution) for d in space.values()):
        ranges = [k for k, d in space.items() if not isinstance(d, CategoricalDistribution)]
        raise ConfigError(f"tune.sampler=grid needs a list of values (choices) for every space entry; ranges: {ranges}")
    for name in t.recipes:  # a bad value fails here, not in a trial after preprocessing
        try:
            check_config(from_dict(trial_config(to_dict(cfg), {RECIPE: name})))
        except (OmegaConfBaseException, ConfigError) as exc:
            raise ConfigError(f"tune.recipes.{name}: {str(exc).splitlines()[0]}") from None


def trial_config(cfg: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The resolved config with the trial's dotted overrides applied, its recipe's among them."""
    out = copy.deepcopy(cfg)
    overrides = {k: v for k, v in params.items() if k != RECIPE}
    if RECIPE in params:
        overrides.update(recipe_overrides(cfg["tune"]["recipes"][params[RECIPE]]))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out
