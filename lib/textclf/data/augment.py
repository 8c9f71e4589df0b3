"""EDA-style text augmentation for the training split (Wei & Zou, 2019).

Four word-level operations: synonym replacement from a lexicon, random insertion of a synonym,
random swap and random deletion. Each augmented copy of a row applies one operation chosen at
random. Randomness comes from a hash of (seed, row id, copy), so a row gets the same copies
whatever the partitioning or the number of Dask workers. Preprocessing calls it on the train
split only, after the split, so no augmented text can leak into validation or test.
"""
from __future__ import annotations

import json
import random
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from textclf.config import AugmentConfig
from textclf.errors import ConfigError
from textclf.storage import filesystem

OPERATIONS = ("synonym", "insert", "swap", "delete")


@lru_cache(maxsize=4)
def load_lexicon(path: str | None = None) -> dict[str, tuple[str, ...]]:
    """{word: synonyms}: the packaged English lexicon, or a JSON file of the same shape."""
    try:
        if path is None:
            raw = json.loads(resources.files("textclf").joinpath("resources/synonyms.json").read_text("utf-8"))
        else:
            fs, local = filesystem(path)
            with fs.open(local, "r", encoding="utf-8") as f:
                raw = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"data.augment.lexicon: cannot read {path!r}: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise ConfigError(f"data.augment.lexicon: {path!r} must map each word to a list of synonyms")
    return {str(k).lower(): tuple(str(s) for s in v if str(s).strip()) for k, v in raw.items() if v}


def check(cfg: AugmentConfig) -> None:
    """Fail before any work starts: bad rates, no operation, an unreadable lexicon."""
    if cfg.copies < 1:
        raise ConfigError(f"data.augment.copies must be >= 1, not {cfg.copies}")
    for name in OPERATIONS:
        value = getattr(cfg, name)
        if not 0 <= value <= 1:
            raise ConfigError(f"data.augment.{name} must be in [0, 1], not {value}")
    if not any(getattr(cfg, name) > 0 for name in OPERATIONS):
        raise ConfigError("data.augment: every operation rate is 0; enable one or set data.augment.enabled=false")
    load_lexicon(cfg.lexicon)


def _synonyms(word: str, lexicon: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    found = lexicon.get(word.lower(), ())
    if word[:1].isupper():
        return tuple(s[:1].upper() + s[1:] for s in found)
    return found


def _count(rate: float, n: int) -> int:
    return max(1, round(rate * n))


def synonym_replace(words: list[str], rate: float, rng: random.Random, lexicon) -> list[str]:
    out = list(words)
    candidates = [i for i, w in enumerate(words) if _synonyms(w, lexicon)]
    rng.shuffle(candidates)
    for i in candidates[:_count(rate, len(words))]:
        out[i] = rng.choice(_synonyms(words[i], lexicon))
    return out


def random_insert(words: list[str], rate: float, rng: random.Random, lexicon) -> list[str]:
    out = list(words)
    sources = [w for w in words if _synonyms(w, lexicon)]
    for _ in range(_count(rate, len(words)) if sources else 0):
        out.insert(rng.randint(0, len(out)), rng.choice(_synonyms(rng.choice(sources), lexicon)).lower())
    return out


def random_swap(words: list[str], rate: float, rng: random.Random, lexicon=None) -> list[str]:
    out = list(words)
    for _ in range(_count(rate, len(words)) if len(words) > 1 else 0):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_delete(words: list[str], rate: float, rng: random.Random, lexicon=None) -> list[str]:
    if len(words) <= 1:
        return list(words)
    kept = [w for w in words if rng.random() >= rate]
    return kept or [rng.choice(words)]


APPLY = {"synonym": synonym_replace, "insert": random_insert, "swap": random_swap, "delete": random_delete}


def augment_text(text: str, cfg: AugmentConfig, rng: random.Random, lexicon) -> str:
    """One augmented variant: one operation, picked among those with a rate above 0."""
    words = text.split()
    if not words:
        return text
    name = rng.choice([n for n in OPERATIONS if getattr(cfg, n) > 0])
    return " ".join(APPLY[name](words, getattr(cfg, name), rng, lexicon))


def augment_partition(part: pd.DataFrame, cfg: AugmentConfig) -> pd.DataFrame:
    """The partition's rows followed by `cfg.copies` augmented copies of each (label kept).

    Copies that come out identical to their source are dropped: they add weight, not variety.
    """
    lexicon = load_lexicon(cfg.lexicon)
    texts = part["text"].astype(str).tolist()
    ids = part["row_id"].to_numpy()
    extra_text, source = [], []
    for i, (row_id, text) in enumerate(zip(ids.tolist(), texts)):
        for copy in range(1, cfg.copies + 1):
            variant = augment_text(text, cfg, random.Random(f"{cfg.seed}:{row_id}:{copy}"), lexicon)
            if variant != text:
                extra_text.append(variant)
                source.append(i)
    copies = part.iloc[np.asarray(source, dtype=np.int64)].copy()
    copies["text"] = pd.Series(extra_text, index=copies.index, dtype="string")
    return pd.concat([part, copies], ignore_index=True)
