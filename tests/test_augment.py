"""EDA augmentation: the operations, seeding, and that preprocessing applies it to train only."""
from __future__ import annotations

import random
from collections import Counter

import pandas as pd
import pyarrow.parquet as pq
import pytest

from textclf.data.augment import (augment_partition, load_lexicon, random_delete, random_insert, random_swap,
                             synonym_replace)
from textclf.config import AugmentConfig, compose
from textclf.errors import ConfigError

WORDS = "the film was really great and the music was lovely".split()


def test_packaged_lexicon_is_symmetric_and_sane():
    lex = load_lexicon()
    assert len(lex) > 300
    assert "superb" in lex["great"] and "great" in lex["superb"]
    assert all(word not in syns for word, syns in lex.items())


def test_operations():
    lex, rng = load_lexicon(), random.Random(0)
    replaced = synonym_replace(WORDS, 0.3, rng, lex)
    changed = [(a, b) for a, b in zip(WORDS, replaced) if a != b]
    assert len(replaced) == len(WORDS) and 1 <= len(changed) <= 3
    assert all(b in lex[a] for a, b in changed)
    inserted = random_insert(WORDS, 0.2, rng, lex)
    extra = Counter(inserted) - Counter(WORDS)
    assert len(inserted) == len(WORDS) + 2 and all(any(w in lex[s] for s in WORDS if s in lex) for w in extra)
    swapped = random_swap(WORDS, 0.2, rng)
    assert sorted(swapped) == sorted(WORDS) and swapped != WORDS
    deleted = random_delete(WORDS, 0.5, rng)
    assert 1 <= len(deleted) < len(WORDS) and not Counter(deleted) - Counter(WORDS)
    assert random_delete(["one"], 1.0, rng) == ["one"]


def test_partition_copies_are_seeded_and_keep_labels():
    part = pd.DataFrame({"row_id": [5, 9], "text": pd.Series([" ".join(WORDS), "a boring and slow movie"], dtype="string"),
                         "label": [1, 0], "split": [0, 0]})
    cfg = AugmentConfig(enabled=True, copies=3)
    out = augment_partition(part, cfg)
    assert out.iloc[:2].equals(part)
    assert 2 < len(out) <= 8
    extra = out.iloc[2:]
    assert set(extra["text"]).isdisjoint(part["text"])
    assert all(label == dict(zip(part.row_id, part.label))[rid] for rid, label in zip(extra.row_id, extra.label))
    assert augment_partition(part, cfg).equals(out)
    assert not augment_partition(part, AugmentConfig(enabled=True, copies=3, seed=14)).equals(out)


@pytest.mark.parametrize("override, message", [
    ("data.augment.copies=0", "data.augment.copies"),
    ("data.augment.delete=1.5", "data.augment.delete"),
    ("data.augment.lexicon=/nonexistent/syn.json", "data.augment.lexicon"),
])
def test_bad_augment_config_is_named(override, message):
    from textclf.data.augment import check

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        check(compose(f"model=tiny {override}").data.augment)


def test_preprocess_augments_the_train_split_only(toy_csv, tmp_path):
    from textclf.data.preprocess import preprocess

    base = f"data.source={toy_csv} model=tiny data.dask.scheduler_address=sync"
    plain = preprocess(compose(base), str(tmp_path / "plain"))
    aug = preprocess(compose(f"{base} data.augment.enabled=true data.augment.copies=2"), str(tmp_path / "aug"))
    originals = set(pd.read_csv(toy_csv)["text"])
    for split in ("val", "test"):
        a, p = (pq.read_table(m["shards"][split]).to_pandas() for m in (aug, plain))
        assert a.equals(p) and set(a["text"]) <= originals
    train = pq.read_table(aug["shards"]["train"]).to_pandas()
    plain_train = pq.read_table(plain["shards"]["train"]).to_pandas()
    added = train[~train["text"].isin(originals)]
    assert aug["augmented_rows"] == len(train) - len(plain_train) == len(added) > len(plain_train)
    assert plain["augmented_rows"] == 0
    source_label = dict(zip(plain_train["row_id"], plain_train["label"]))
    assert all(source_label[r] == l for r, l in zip(added["row_id"], added["label"]))
