"""Splits that hold across data versions: a row's split follows its own normalized text, so rows
added later move no row that was there before, and the order of the rows changes nothing."""
from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import toy_rows, write_csv
from test_data import prep, shard
from textclf.config import compose
from textclf.data.cleaning import inspect_partition
from textclf.data.shards import SPLITS
from textclf.data.split_plan import plan, split_unit
from textclf.errors import DataError

DATA = compose("data.dask.scheduler_address=sync").data


def splits_of(rows: list[tuple[str, str]]) -> dict[str, str]:
    """text -> split, from pass one and the plan on one in-memory partition."""
    frame = pd.DataFrame(rows, columns=["text", "label"]).assign(split_hint="")
    thin = inspect_partition(frame, DATA)
    codes = plan(thin, DATA, [("rows.csv", 0, 1)]).assign.reindex(thin["pos"]).to_numpy()
    return {text: SPLITS[code] for text, code in zip(frame["text"], codes)}


def test_appended_rows_move_no_existing_row(tmp_path):
    """Version two holds 30 % more rows, of both classes, appended: every first-version row keeps its split."""
    rows = toy_rows(520, seed=3)
    first, added = rows[:400], rows[400:]
    assert {label for _, label in added} == {"negative", "positive"}
    v1 = prep(tmp_path, f"data.source={write_csv(tmp_path / 'v1.csv', first)}", "v1")
    v2 = prep(tmp_path, f"data.source={write_csv(tmp_path / 'v2.csv', first + added)}", "v2")

    def placed(manifest: dict) -> dict[str, str]:
        return {text: name for name in SPLITS for text in shard(manifest, name)["text"]}

    before, after = placed(v1), placed(v2)
    assert len(before) == 400 and len(after) == 520
    assert {text: after[text] for text in before} == before
    assert {after[text] for text in set(after) - set(before)} == set(SPLITS)  # the new rows reach every split


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_split_does_not_depend_on_row_order(rng: random.Random):
    rows = toy_rows(300, seed=5)
    shuffled = rng.sample(rows, len(rows))
    assert splits_of(shuffled) == splits_of(rows)


def test_fractions_hold_on_thousands_of_rows():
    placed = splits_of(toy_rows(4000, seed=7))
    labels = dict(toy_rows(4000, seed=7))
    shares = pd.crosstab(pd.Series(placed), pd.Series(labels), normalize="columns")  # per class
    for name, fraction in (("test", DATA.test_fraction), ("val", DATA.val_fraction)):
        assert shares.loc[name].to_numpy() == pytest.approx(fraction, abs=0.02), shares


def test_a_small_class_still_reaches_every_split():
    """Three distinct rows are enough for train, val and test whatever their hashes say (here all
    three hash into test); two are not, and the error says how many are."""
    rows = toy_rows(400, seed=11)
    big = [r for r in rows if r[1] == "positive"]
    negative = pd.DataFrame([r for r in rows if r[1] == "negative"], columns=["text", "label"]).assign(split_hint="")
    u = split_unit(inspect_partition(negative, DATA)["key_norm"])
    small = list(negative.loc[u < DATA.test_fraction, ["text", "label"]].itertuples(index=False, name=None))[:3]
    placed = splits_of(big + small)
    assert sorted(placed[text] for text, _ in small) == sorted(SPLITS)
    with pytest.raises(DataError, match=r"class 'negative' has 2 distinct row\(s\).* a class needs 3"):
        splits_of(big + small[:2])
