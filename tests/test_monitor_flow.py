"""Continuous training end to end: TrainFlow makes a champion, the server answers with it, users
send feedback, MonitorFlow judges the champion and, when it falls behind, retrains it on a new
data version; the gate promotes the new model and the running server switches to it by itself.

Everything is real: both flows run as Metaflow subprocesses, the server is uvicorn on 127.0.0.1,
feedback goes through HTTP into the Parquet store, and the registry is the sandbox's MLflow.
"""
from __future__ import annotations

import hashlib
import random
import time

import httpx
import pandas as pd
import pytest

from conftest import SANDBOX, TINY, latest_run, run_flow, toy_rows, write_csv
from serving import serving

pytestmark = pytest.mark.integration

MODEL_NAME = f"monitored-{SANDBOX.name}"
# Words the champion never saw (a shift in how users write). Its answers on them are arbitrary,
# so the moderators' corrections are built from them: each word's label is the opposite of what
# the champion says, as feedback on a model's mistakes is.
NEW_WORDS = ["zorpy", "glimmerish", "snazzlic", "fabuloid", "grottish", "blechy", "sludgeful", "crumbumy"]


def new_vocabulary_rows(word_labels: dict[str, str], n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = sorted(word_labels)
    rows = []
    for i in range(n):
        word = words[i % len(words)]
        rows.append((f"my {rng.choice(['order', 'visit', 'stay', 'trip'])} felt {word} overall {seed}-{i}",
                     word_labels[word]))
    return rows


def row_hash(text: str, label: str) -> str:
    return hashlib.sha256(f"{text}\x1f{label}".encode()).hexdigest()


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A champion trained on 600 toy reviews, registered under a name of its own."""
    data = write_csv(tmp_path_factory.mktemp("monitor") / "reviews.csv", toy_rows(600, seed=11))
    run_flow("train_flow.py", f"data.source={data} {TINY} train.nproc_per_node=1 registry.model_name={MODEL_NAME}")
    run = latest_run("TrainFlow")
    assert run.successful and run["register"].task["registration"].data["alias"] == "champion"
    return data, run


def monitor(overrides: str):
    run_flow("monitor_flow.py", f"serve.model=models:/{MODEL_NAME}@champion {overrides}")
    run = latest_run("MonitorFlow")
    assert run.successful
    return run


def test_in_distribution_labels_do_not_retrain(champion, tmp_path):
    """Fresh labels from the same distribution: good accuracy, no drift, young model -> keep it."""
    batch = write_csv(tmp_path / "batch.csv", toy_rows(700, seed=12)[-200:])
    run = monitor(f"monitor.batch={batch} serve.feedback_root={tmp_path / 'no-feedback'}")
    assessment = run["assess"].task["assessment"].data
    assert assessment["n_fresh"] == 200 and assessment["metrics"]["accuracy"] >= 0.8
    assert assessment["retrain"] is False and assessment["reasons"] == [], assessment["summary"]
    assert run["retrain"].task["triggered"].data is None and run["retrain"].task["version"].data is None
    assert not any(t.startswith("retrained:") for t in run.user_tags)


def test_new_vocabulary_in_feedback_retrains_and_the_server_follows(champion, tmp_path):
    from textclf.config import ServeConfig
    from textclf.serve.app import create_app

    data, first = champion
    v1 = first["register"].task["registration"].data["version"]
    feedback_root = str(tmp_path / "feedback")
    cfg = ServeConfig(model=f"models:/{MODEL_NAME}@champion", feedback_root=feedback_root, poll_seconds=0.5)
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
        said = client.post("/predict", json={"texts": [f"my order felt {w} overall" for w in NEW_WORDS]}).json()
        flip = {"positive": "negative", "negative": "positive"}
        word_labels = {w: flip[p["label"]] for w, p in zip(NEW_WORDS, said["predictions"])}
        probes = new_vocabulary_rows(word_labels, 64, seed=99)  # never sent: how the server does on the shift
        sent = new_vocabulary_rows(word_labels, 200, seed=7)

        def accuracy_on_probes() -> tuple[str, float]:
            body = client.post("/predict", json={"texts": [t for t, _ in probes]}).raise_for_status().json()
            right = sum(p["label"] == y for p, (_, y) in zip(body["predictions"], probes))
            return body["model"]["version"], right / len(probes)

        version_before, before = accuracy_on_probes()
        assert version_before == v1
        for text, label in sent:  # a moderator corrects what the model says, one text at a time
            pred = client.post("/predict", json={"texts": text}).raise_for_status().json()["predictions"][0]
            client.post("/feedback", json={"text": text, "labels": label,
                                           "prediction_id": pred["prediction_id"]}).raise_for_status()
        # the same correction twice, and a text first mislabelled then corrected: each counts once
        client.post("/feedback", json={"text": sent[0][0], "labels": sent[0][1]}).raise_for_status()
        wrong = "positive" if sent[1][1] == "negative" else "negative"
        client.post("/feedback", json={"text": sent[1][0], "labels": wrong}).raise_for_status()
        client.post("/feedback", json={"text": sent[1][0], "labels": sent[1][1]}).raise_for_status()

        run = monitor(f"serve.feedback_root={feedback_root}")

        assessment = run["assess"].task["assessment"].data
        assert assessment["retrain"] is True and assessment["n_fresh"] == 203
        assert any("fresh labels fell to" in r for r in assessment["reasons"]), assessment["summary"]
        triggered = run["retrain"].task["triggered"].data
        retrained = latest_run("TrainFlow")
        assert retrained.pathspec == triggered and retrained.successful
        registration = retrained["register"].task["registration"].data
        assert registration["alias"] == "champion", registration["reason"]

        deadline = time.monotonic() + 60  # the server's poller follows the alias by itself
        while client.get("/model").json()["version"] != registration["version"] and time.monotonic() < deadline:
            time.sleep(0.5)
        version_after, after = accuracy_on_probes()
    assert version_after == registration["version"] != v1
    assert before <= 0.3 and after >= 0.9, (before, after)

    # the new data version: every earlier row, in order, then each accepted feedback row exactly once
    version = run["retrain"].task["version"].data
    assert retrained["start"].task["cfg"].data["data"]["source"] == version["uri"]
    rows = pd.read_csv(version["uri"], dtype=str, keep_default_na=False)
    original = pd.read_csv(data, dtype=str, keep_default_na=False)
    assert (version["previous_rows"], version["added_rows"], version["rows"]) == (600, 200, 800) == (
        len(original), len(sent), len(rows))
    earlier = [row_hash(t, y) for t, y in zip(rows["text"][:600], rows["label"][:600])]
    assert earlier == [row_hash(t, y) for t, y in zip(original["text"], original["label"])]
    added = [row_hash(t, y) for t, y in zip(rows["text"][600:], rows["label"][600:])]
    assert sorted(added) == sorted(row_hash(t, y) for t, y in sent)
    assert version["sha256"] == hashlib.sha256(open(version["uri"], "rb").read()).hexdigest()
    assert retrained["preprocess"].task["manifest"].data["fingerprint"]["sha256"] != \
        first["preprocess"].task["manifest"].data["fingerprint"]["sha256"]
