"""Drift statistics and the next data version, without a flow."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from textclf.data.versions import new_data_version
from textclf.monitoring.drift import label_shift, mmd_test, psi
from textclf.monitoring.retraining import accepted_feedback


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(20, 5, 2000)
    assert psi(reference, rng.normal(20, 5, 500)) < 0.1
    assert psi(reference, rng.normal(35, 5, 500)) > 1.0


def test_label_shift_is_the_total_variation_distance():
    assert label_shift({"neg": 0.5, "pos": 0.5}, [["neg"], ["pos"]] * 10) == pytest.approx(0.0)
    assert label_shift({"neg": 0.5, "pos": 0.5}, [["neg"]] * 10) == pytest.approx(0.5)
    assert label_shift({"neg": 1.0}, [["spam"]]) == pytest.approx(1.0)


def test_mmd_detects_a_mean_shift_and_not_a_resample():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 8))
    _, p_same = mmd_test(x, rng.normal(size=(60, 8)), permutations=200)
    _, p_shift = mmd_test(x, rng.normal(0.8, 1, size=(60, 8)), permutations=200)
    assert p_same > 0.05
    assert p_shift < 0.01


def _feedback(rows):
    stamps = pd.date_range("2026-11-01", periods=len(rows), freq="h", tz="UTC")
    return pd.DataFrame({"text": [t for t, _ in rows], "labels": [ls for _, ls in rows], "timestamp": stamps})


def test_feedback_is_validated_and_the_latest_correction_wins():
    fb = _feedback([("good film", ["pos"]), ("", ["neg"]), ("odd", ["spam"]), ("two", ["pos", "neg"]),
                    ("Good  film!", ["neg"])])
    ok, report = accepted_feedback(fb, ["neg", "pos"], multi_label=False)
    assert report == {"received": 5, "accepted": 1,
                      "rejected": {"empty text": 1, "unknown label": 1, "several labels for a single-label model": 1}}
    assert ok["text"].tolist() == ["Good  film!"] and ok["labels"].tolist() == [["neg"]]


def test_new_version_keeps_every_earlier_row_and_adds_each_accepted_row_once(tmp_path):
    # string dtype, as the data readers give it (pandas 3 turns tuples from Series.map into lists)
    previous = pd.DataFrame({"text": ["a fine film", "a dull film", "a dull film"], "label": ["pos", "neg", "neg"]},
                            dtype="string")
    fb, _ = accepted_feedback(_feedback([("A fine film", ["pos"]),  # already there with this label: adds nothing
                                         ("a dull film", ["pos"]),  # a correction: appended
                                         ("new text", ["neg"]), ("new text", ["neg"])]), ["neg", "pos"], False)
    version = new_data_version(previous, fb, "text", "label", False, "|", str(tmp_path))
    data = pd.read_csv(version["uri"])
    assert version["rows"] == len(data) == 5 and version["added_rows"] == 2
    assert data.iloc[:3].astype("string").equals(previous)  # earlier rows untouched, in order
    assert data.iloc[3:].values.tolist() == [["a dull film", "pos"], ["new text", "neg"]]
    raw = open(version["uri"], "rb").read()
    assert hashlib.sha256(raw).hexdigest() == version["sha256"]
    assert version["sha256"][:16] in version["uri"]


def test_trainflow_stores_a_reference_profile_with_the_model(trained_run):
    from textclf.evaluation.profile import load_profile

    task = trained_run["end"].task
    profile, vectors = load_profile(task["model_uri"].data)
    held_out = sum(task["manifest"].data["splits"][s]["rows"] for s in ("val", "test"))
    assert profile["n"] == len(profile["lengths"]) == len(profile["confidence"]) == held_out
    assert sum(profile["label_shares"].values()) == pytest.approx(1.0)
    assert all(0.5 <= c <= 1 for c in profile["confidence"])  # top-class probability of two classes
    assert vectors.shape == (held_out, 64)  # tiny-bert's hidden size
