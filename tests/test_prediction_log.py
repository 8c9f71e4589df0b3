"""The prediction log against real uvicorn servers: every answer is logged durably; feedback is
tied to its prediction across a restart and across replicas, but only when it quotes the text that
was predicted; reviews are drawn at random and recorded as such."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from conftest import SANDBOX
from serving import serving
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)
from textclf.config import ServeConfig
from textclf.monitoring.feedback import read_feedback
from textclf.monitoring.predictions import PredictionLog, new_prediction_id, read_predictions, text_hash

TEXT = "the film was truly wonderful film"


def logged_row(when: datetime, text: str) -> dict:
    return {"prediction_id": new_prediction_id(when), "timestamp": when, "model_name": "m", "model_version": "1",
            "text_hash": text_hash(text), "text": text, "length": len(text), "predicted": ["positive"],
            "confidence": 0.9, "classes": ["negative", "positive"], "probabilities": [0.1, 0.9],
            "latency_ms": 3.0, "sampled": False}


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_the_log_is_partitioned_by_day_and_found_by_id_from_another_process(where, request):
    root = (str(SANDBOX / "prediction-log" / "store") if where == "local"
            else request.getfixturevalue("gcs").url("serve", f"predictions-{os.getpid()}-{time.time_ns()}"))
    now = datetime.now(timezone.utc)
    old, new = logged_row(now - timedelta(days=3), "three days ago"), logged_row(now, "just now")
    writer = PredictionLog(root, log_texts=False)
    writer.record([old, new])
    assert writer.lookup(new["prediction_id"])["text"] is None  # texts kept only when configured
    writer.close()
    reader = PredictionLog(root)  # another replica: only the store knows these ids
    assert reader.lookup(old["prediction_id"])["text_hash"] == text_hash("three days ago")
    assert reader.lookup(new_prediction_id(now)) is None and reader.lookup("not an id") is None
    assert read_predictions(root)["prediction_id"].tolist() == [old["prediction_id"], new["prediction_id"]]
    assert read_predictions(root, since=now - timedelta(days=1))["prediction_id"].tolist() == [new["prediction_id"]]


@pytest.fixture(scope="module")
def model_uri(trained_run) -> str:
    return trained_run.pathspec


def server(model_uri: str, root: str, **overrides):
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=model_uri, feedback_root=root, poll_seconds=0, **overrides)
    return serving(create_app(cfg))


def predict(url: str, texts) -> dict:
    return httpx.post(url + "/predict", json={"texts": texts}, timeout=60).raise_for_status().json()


def feedback(url: str, **body) -> dict:
    return httpx.post(url + "/feedback", json=body, timeout=60).raise_for_status().json()


def wait_logged(root: str, prediction_id: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while prediction_id not in set(read_predictions(root + "/predictions")["prediction_id"]):
        assert time.monotonic() < deadline, f"{prediction_id} never reached the log"
        time.sleep(0.2)


def test_every_prediction_is_logged_with_what_monitoring_needs(model_uri, tmp_path):
    root = str(tmp_path / "store")
    with server(model_uri, root) as url:
        answer = predict(url, [TEXT, "the hotel was really awful hotel"])
    log = read_predictions(root + "/predictions")  # the server flushed it on shutdown
    ids = [p["prediction_id"] for p in answer["predictions"]]
    assert log["prediction_id"].tolist() == ids
    row = log.iloc[0]
    assert row["text_hash"] == text_hash(TEXT) and row["text"] == TEXT and row["length"] == len(TEXT)
    assert row["model_version"] == answer["model"]["version"] and list(row["classes"]) == ["negative", "positive"]
    assert list(row["predicted"]) == [answer["predictions"][0]["label"]]
    assert row["probabilities"][1] == pytest.approx(answer["predictions"][0]["probabilities"]["positive"], abs=1e-6)
    assert row["confidence"] == pytest.approx(max(row["probabilities"])) and row["latency_ms"] > 0


def test_a_prediction_id_resolves_after_a_restart(model_uri, tmp_path):
    root = str(tmp_path / "store")
    with server(model_uri, root) as url:
        pred = predict(url, TEXT)["predictions"][0]
    with server(model_uri, root) as url:  # a new process state: nothing remembered in memory
        saved = feedback(url, text=TEXT, labels=pred["label"], prediction_id=pred["prediction_id"])
    assert saved["linked"] is True and saved["kind"] == "confirmation" and saved["prediction_id"] == pred["prediction_id"]
    row = read_feedback(root).iloc[0]
    assert row["linked"] and row["kind"] == "confirmation" and row["predicted"] == [pred["label"]]


def test_replicas_share_the_log(model_uri, tmp_path):
    root = str(tmp_path / "store")
    with server(model_uri, root) as a, server(model_uri, root) as b:
        pred = predict(a, TEXT)["predictions"][0]
        wait_logged(root, pred["prediction_id"])  # replica a writes within a second
        other = "negative" if pred["label"] == "positive" else "positive"
        saved = feedback(b, text=TEXT, labels=other, prediction_id=pred["prediction_id"])
    assert saved["linked"] is True and saved["kind"] == "correction"


def test_feedback_on_another_text_or_an_unknown_id_is_not_tied_to_a_prediction(model_uri, tmp_path):
    root = str(tmp_path / "store")
    with server(model_uri, root) as url:
        pred = predict(url, TEXT)["predictions"][0]
        edited = feedback(url, text=TEXT + " not", labels="negative", prediction_id=pred["prediction_id"])
        unknown = feedback(url, text=TEXT, labels="positive", prediction_id="0" * 32)
    for saved in (edited, unknown):
        assert saved["linked"] is False and saved["kind"] == "label" and saved["prediction_id"] is None
        assert saved["model_version"] is None
    assert "text differs" in edited["note"] and "unknown prediction id" in unknown["note"]
    stored = read_feedback(root)
    assert stored["linked"].tolist() == [False, False] and stored["predicted"].tolist() == [None, None]
    assert stored["text"].tolist() == [TEXT + " not", TEXT]  # still training rows


def test_reviews_are_drawn_at_random_and_the_log_can_be_sampled(model_uri, tmp_path):
    texts = [f"{TEXT} {i}" for i in range(40)]
    everything, nothing = str(tmp_path / "all"), str(tmp_path / "none")
    with server(model_uri, everything, review_fraction=1.0) as url:
        drawn = predict(url, texts)["predictions"]
    with server(model_uri, nothing, log_fraction=0.0) as url:
        unlogged = predict(url, texts)["predictions"]
        saved = feedback(url, text=texts[0], labels="positive", prediction_id=unlogged[0]["prediction_id"])
    assert all(p["review_requested"] for p in drawn) and read_predictions(everything + "/predictions")["sampled"].all()
    assert not any(p["review_requested"] for p in unlogged) and read_predictions(nothing + "/predictions").empty
    assert saved["linked"] is False
    with server(model_uri, str(SANDBOX / "prediction-log" / "default")) as url:
        some = [p for _ in range(5) for p in predict(url, texts)["predictions"]]  # default: a tenth drawn for review
    assert 0 < sum(p["review_requested"] for p in some) < len(some) / 2
