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
from support.dvc_project import dvc_project, sh

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


def foreign_texts(n: int, seed: int) -> list[str]:
    """Traffic from another domain (kitchen and weather notes): words, shapes and lengths the
    champion's reviews never had."""
    rng = random.Random(seed)
    verbs = ["whisk", "simmer", "fold", "season", "roast", "knead", "chill", "grate"]
    foods = ["the onions", "two eggs", "the dough", "a pinch of salt", "the broth", "fresh basil", "the lentils"]
    skies = ["light drizzle", "gusts from the north", "clear spells", "morning fog", "scattered showers"]
    rows = []
    for i in range(n):
        if rng.random() < 0.5:
            rows.append(f"{rng.choice(verbs)} {rng.choice(foods)} for {rng.randint(2, 40)} minutes, then "
                        f"{rng.choice(verbs)} {rng.choice(foods)} and set aside until step {rng.randint(2, 9)}")
        else:
            rows.append(f"forecast for tuesday: {rng.choice(skies)} with {rng.choice(skies)} later, "
                        f"around {rng.randint(-5, 30)} degrees, station {seed}-{i}")
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


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The folder MonitorFlow runs in, as cron runs it from the project: a git + DVC repo set up as
    this one ships, so a retrain versions its data there with DVC (never in the checkout under test)."""
    return dvc_project(tmp_path_factory.mktemp("project"))


def monitor(overrides: str, project):
    run_flow("monitor_flow.py", f"serve.model=models:/{MODEL_NAME}@champion {overrides}", cwd=project)
    run = latest_run("MonitorFlow")
    assert run.successful
    return run


def test_a_fresh_install_has_nothing_to_assess_and_keeps_the_champion(champion, project, tmp_path):
    """Right after the quickstart: no feedback, no traffic. A clean decision, not a crash."""
    run = monitor(f"serve.feedback_root={tmp_path / 'empty'}", project)
    assessment = run["assess"].task["assessment"].data
    assert assessment["retrain"] is False and assessment["n_labels"] == assessment["n_traffic"] == 0
    assert assessment["summary"].startswith("keep the champion: nothing fresh to assess"), assessment["summary"]


def serve_traffic(root, texts: list[str]) -> None:
    from textclf.config import ServeConfig
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=f"models:/{MODEL_NAME}@champion", feedback_root=str(root), poll_seconds=0)
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, len(texts), 16):
            client.post("/predict", json={"texts": texts[start:start + 16]}).raise_for_status()


def test_traffic_from_another_domain_is_drift_from_the_log_alone(champion, project, tmp_path):
    """No labels at all: the prediction log of foreign traffic is enough to call drift; the same
    amount of in-domain traffic is not."""
    serve_traffic(tmp_path / "foreign", foreign_texts(120, seed=1))
    serve_traffic(tmp_path / "familiar", [t for t, _ in toy_rows(120, seed=21)])
    foreign = monitor(f"serve.feedback_root={tmp_path / 'foreign'} monitor.retrain=false", project)
    familiar = monitor(f"serve.feedback_root={tmp_path / 'familiar'} monitor.retrain=false", project)
    drifted, calm = foreign["assess"].task["assessment"].data, familiar["assess"].task["assessment"].data
    assert drifted["n_traffic"] == calm["n_traffic"] == 120 and drifted["n_labels"] == calm["n_labels"] == 0
    assert drifted["retrain"] and all(r.startswith("traffic drift") for r in drifted["reasons"]), drifted["summary"]
    assert any("embedding MMD" in r for r in drifted["reasons"])
    assert not calm["retrain"], calm["summary"]
    assert foreign["retrain"].task["triggered"].data is None  # monitor.retrain=false: report only


def test_false_alarm_rate_over_many_in_domain_windows(champion):
    """Twenty windows of in-domain traffic and five of foreign traffic through the assessment the
    flow runs: the rate of false alarms, and the rate of detections."""
    from datetime import datetime, timezone

    from textclf.config import MonitorConfig
    from textclf.model.predictor import Predictor
    from textclf.monitoring.assessment import assess
    from textclf.evaluation.profile import load_profile
    from textclf.registry.resolution import resolve_model

    model = resolve_model(f"models:/{MODEL_NAME}@champion")
    predictor, (profile, vectors) = Predictor(model.path), load_profile(model.path)
    mcfg, no_labels = MonitorConfig(), pd.DataFrame(columns=["text", "labels"])

    def alarms(windows: list[list[str]]) -> int:
        decisions = [assess(mcfg, predictor, profile, vectors, no_labels, pd.DataFrame({"text": texts}), {},
                            datetime.now(timezone.utc))[0] for texts in windows]
        print([d.reasons for d in decisions if d.retrain])
        return sum(d.retrain for d in decisions)

    false_alarms = alarms([[t for t, _ in toy_rows(100, seed=1000 + w)] for w in range(20)])
    detections = alarms([foreign_texts(100, seed=2000 + w) for w in range(5)])
    print(f"false alarms: {false_alarms}/20 in-domain windows; detections: {detections}/5 foreign windows")
    assert false_alarms <= 1 and detections == 5


def test_in_distribution_labels_do_not_retrain(champion, project, tmp_path):
    """Fresh labels from the same distribution: good accuracy, no drift, young model -> keep it."""
    batch = write_csv(tmp_path / "batch.csv", toy_rows(700, seed=12)[-200:])
    run = monitor(f"monitor.batch={batch} serve.feedback_root={tmp_path / 'no-feedback'}", project)
    assessment = run["assess"].task["assessment"].data
    assert assessment["n_labels"] == 200 and assessment["metrics"]["accuracy"] >= 0.8
    low, high = assessment["interval"]["accuracy"]
    assert low <= assessment["metrics"]["accuracy"] <= high
    assert assessment["retrain"] is False and assessment["reasons"] == [], assessment["summary"]
    assert run["retrain"].task["triggered"].data is None and run["retrain"].task["version"].data is None


def test_new_vocabulary_in_feedback_retrains_and_the_server_follows(champion, project, tmp_path):
    from textclf.config import ServeConfig
    from textclf.serve.app import create_app

    data, first = champion
    v1 = first["register"].task["registration"].data["version"]
    feedback_root = str(tmp_path / "feedback")
    # every prediction drawn for review, and the moderator reviews each one sent: an unbiased sample
    cfg = ServeConfig(model=f"models:/{MODEL_NAME}@champion", feedback_root=feedback_root, poll_seconds=0.5,
                      review_fraction=1.0)
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

        run = monitor(f"serve.feedback_root={feedback_root}", project)

        assessment = run["assess"].task["assessment"].data
        assert assessment["retrain"] is True and assessment["n_labels"] == 200  # the 3 unlinked: training rows only
        assert any("unbiased fresh labels" in r for r in assessment["reasons"]), assessment["summary"]
        triggered = run["retrain"].task["triggered"].data
        retrained = latest_run("TrainFlow")
        assert retrained.pathspec == triggered and retrained.successful
        assert f"retrained_by:{run.pathspec}" in retrained.user_tags  # linked both ways, tagged at launch ...
        assert retrained["start"].task["requested_by"].data == run.pathspec  # ... and given as deployed runs get it
        assert retrained["start"].task["cfg"].data["branch"] == run["start"].task["cfg"].data["branch"]
        registration = retrained["register"].task["registration"].data
        assert registration["alias"] == "champion", registration["reason"]

        deadline = time.monotonic() + 60  # the server's poller follows the alias by itself
        while client.get("/model").json()["version"] != registration["version"] and time.monotonic() < deadline:
            time.sleep(0.5)
        version_after, after = accuracy_on_probes()
    assert version_after == registration["version"] != v1
    assert before <= 0.3 and after >= 0.9, (before, after)

    # the new data version, DVC-tracked in the project: pushed to its default remote, its .dvc file
    # committed, and the retraining run reads it by dvc:// at that commit
    version = run["retrain"].task["version"].data
    assert version["uri"] == f"dvc://data/versions/{version['sha256'][:16]}.csv"
    assert version["revision"] == sh(project, "git", "rev-parse", "HEAD")
    md5 = version["dvc"]["md5"]
    assert (project / ".textclf" / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    retrained_data = retrained["start"].task["cfg"].data["data"]
    assert (retrained_data["source"], retrained_data["revision"]) == (version["uri"], version["revision"])
    read = retrained["preprocess"].task["manifest"].data["fingerprint"]["sources"][version["uri"]]
    assert (read["dvc_rev"], read["dvc_md5"], read["sha256"]) == (version["revision"], md5, version["sha256"])
    # every earlier row, in order, then each accepted feedback row exactly once
    rows = pd.read_csv(version["path"], dtype=str, keep_default_na=False)
    original = pd.read_csv(data, dtype=str, keep_default_na=False)
    assert (version["previous_rows"], version["added_rows"], version["rows"]) == (600, 200, 800) == (
        len(original), len(sent), len(rows))
    earlier = [row_hash(t, y) for t, y in zip(rows["text"][:600], rows["label"][:600])]
    assert earlier == [row_hash(t, y) for t, y in zip(original["text"], original["label"])]
    added = [row_hash(t, y) for t, y in zip(rows["text"][600:], rows["label"][600:])]
    assert sorted(added) == sorted(row_hash(t, y) for t, y in sent)
    assert version["sha256"] == hashlib.sha256(open(version["path"], "rb").read()).hexdigest()
    assert retrained["preprocess"].task["manifest"].data["fingerprint"]["sha256"] != \
        first["preprocess"].task["manifest"].data["fingerprint"]["sha256"]
