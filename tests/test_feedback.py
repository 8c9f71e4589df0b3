"""The feedback store: append-only files, read back whole, locally and on gs:// (a real emulator)."""
from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from conftest import SANDBOX
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)
from textclf.errors import DataError
from textclf.monitoring.feedback import COLUMNS, append_feedback, read_feedback
from textclf.storage import filesystem


def _roundtrip(root: str) -> None:
    assert read_feedback(root).columns.tolist() == COLUMNS and read_feedback(root).empty
    first = append_feedback(root, [{"text": "the film was awful", "labels": "negative", "predicted": "positive",
                                    "model_version": "3", "prediction_id": "p-1"}])
    before = filesystem(first)[0].cat(filesystem(first)[1])
    second = append_feedback(root, [{"text": "good meal", "labels": ["positive"]},
                                    {"text": "tags", "labels": ["a", "b"], "timestamp": "2024-01-02T03:04:05"}])
    assert first != second
    assert filesystem(first)[0].cat(filesystem(first)[1]) == before  # never rewritten

    frame = read_feedback(root)
    assert frame.columns.tolist() == COLUMNS and len(frame) == 3
    assert frame["text"].tolist() == ["tags", "the film was awful", "good meal"]  # oldest first
    assert frame["labels"].tolist() == [["a", "b"], ["negative"], ["positive"]]
    assert frame["predicted"].tolist() == [None, ["positive"], None]
    assert frame["model_version"].tolist() == [None, "3", None]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T03:04:05", tz="UTC")
    assert (pd.Timestamp.now(tz="UTC") - frame["timestamp"].iloc[2]) < pd.Timedelta(minutes=5)


def test_local_roundtrip_is_append_only():
    _roundtrip(str(SANDBOX / "feedback-local"))


@pytest.mark.parametrize("row, field", [
    ({"text": "", "labels": "x"}, "text"),
    ({"text": 3, "labels": "x"}, "text"),
    ({"text": "ok", "labels": []}, "labels"),
    ({"text": "ok", "labels": [1]}, "labels"),
    ({"text": "ok", "labels": "x", "colour": "red"}, "unknown field"),
])
def test_bad_rows_are_refused_by_name(row, field):
    root = str(SANDBOX / "feedback-bad")
    with pytest.raises(DataError, match=f"row 1: {field}"):
        append_feedback(root, [{"text": "fine", "labels": "x"}, row])
    assert read_feedback(root).empty  # nothing half-written


def test_gcs_roundtrip(gcs):
    _roundtrip(gcs.url("serve", f"feedback-{os.getpid()}-{time.time_ns()}"))
