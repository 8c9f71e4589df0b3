"""One configuration over several seeds: how a trial and the final step train it, and what its
scores come to (mean ± std and a 95 % t-interval; folds are summarised the same way).

One training's validation score moves with the seed by about as much as recipes differ, so a
candidate is judged by the mean over `tune.seeds` trainings and the winner reported over
`tune.final_seeds`, each with its spread."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from textclf.config import from_dict
from textclf.training.launcher import run_paths, train_model
from textclf.tuning.space import trial_config


def train_seed(cfg_dict: dict[str, Any], params: dict[str, Any], manifest: dict[str, Any], run_key: str,
               name: str, i: int, concurrent: int = 1) -> dict[str, Any]:
    """Train the config with `params` and seed train.seed + i under `<run>/<name>/seed-<i>`; the
    training record with the `seed` used and the `model` folder added. `concurrent`: trainings
    sharing this machine's cores at once (`textclf.training.launcher.threads_per_proc`)."""
    seeded = trial_config(cfg_dict, params)
    seeded["train"]["seed"] += i
    cfg = from_dict(seeded)
    paths = run_paths(cfg, "TuneFlow", f"{run_key}/{name}/seed-{i}")
    return {**train_model(cfg, manifest, paths, concurrent=concurrent), "seed": cfg.train.seed, "model": paths["model"]}


def spread(scores: list[float]) -> dict[str, Any]:
    """n, mean, std (n-1) and a 95 % Student-t interval of the mean; with one score no interval (NaN)."""
    arr = np.asarray(scores, dtype=float)
    n, mean = len(arr), float(arr.mean())
    std = float(arr.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half, "scores": arr.tolist()}
