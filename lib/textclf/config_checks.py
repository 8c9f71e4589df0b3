"""The checks a composed config passes before anything runs, each naming the key it refuses."""
from __future__ import annotations

from textclf.config import TextclfConfig
from textclf.errors import ConfigError


def check(cfg: TextclfConfig) -> None:
    """The rules a type cannot say: allowed values, ranges, and keys that need each other."""
    d = cfg.data
    if not d.source and not d.train:
        raise ConfigError("data.source (one file, split automatically) or data.train is required")
    if not 0 <= d.val_fraction < 1 or not 0 <= d.test_fraction < 1 or d.val_fraction + d.test_fraction >= 1:
        raise ConfigError("data.val_fraction and data.test_fraction must be in [0, 1) and sum below 1")
    choices = {
        "model.pooling": (cfg.model.pooling, {"cls", "mean", "attention"}),
        "train.scheduler": (cfg.train.scheduler, {"linear", "cosine"}),
        "train.loss": (cfg.train.loss, {"ce", "focal"}),
        "train.amp": (cfg.train.amp, {"auto", "bf16", "off"}),
        "data.clean.urls": (d.clean.urls, {"keep", "replace", "remove"}),
        "data.clean.mentions": (d.clean.mentions, {"keep", "replace", "remove"}),
        "data.clean.html": (d.clean.html, {"strip", "keep"}),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {sorted(allowed)}, not {value!r}")
    if not 0 < cfg.train.layer_decay <= 1:
        raise ConfigError(f"train.layer_decay must be in (0, 1], not {cfg.train.layer_decay}")
    if not 0 <= cfg.train.ema < 1:
        raise ConfigError(f"train.ema must be in [0, 1) (0: off), not {cfg.train.ema}")
    for key in ("log_fraction", "review_fraction"):
        if not 0 <= getattr(cfg.serve, key) <= 1:
            raise ConfigError(f"serve.{key} must be in [0, 1], not {getattr(cfg.serve, key)}")
    if cfg.train.fgm < 0:
        raise ConfigError(f"train.fgm must be >= 0 (0: off), not {cfg.train.fgm}")
    if cfg.train.fgm_every < 1:
        raise ConfigError(f"train.fgm_every must be >= 1 (1: every micro-batch), not {cfg.train.fgm_every}")
    if cfg.train.fgm and cfg.train.freeze_word_embeddings:
        raise ConfigError("train.fgm follows the word embeddings' gradient: not with train.freeze_word_embeddings")
