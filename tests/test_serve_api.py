"""The JSON API through HTTP against a real uvicorn on 127.0.0.1, serving the toy TrainFlow model;
the Gradio endpoints through gradio_client; bad input never a 500; basic auth."""
from __future__ import annotations

import csv
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import SANDBOX
from serving import serving
from textclf.config import ServeConfig
from textclf.monitoring.feedback import read_feedback

POSITIVE_TEXT = "the film was truly wonderful film"
CROSS_SITE = [{"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
              {"origin": "null"}, {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:1"}]
NEGATIVE_TEXT = "the hotel was really awful hotel"


@pytest.fixture(scope="module")
def model_uri(trained_run) -> str:
    return trained_run.pathspec


@pytest.fixture(scope="module")
def served(model_uri):
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=model_uri, feedback_root=str(SANDBOX / "serve-api" / "feedback"),
                      max_texts=8, max_chars=300, poll_seconds=0)
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, cfg


def test_predict_one_text_and_a_list(served):
    client, _ = served
    one = client.post("/predict", json={"texts": POSITIVE_TEXT})
    assert one.status_code == 200, one.text
    body = one.json()
    [pred] = body["predictions"]
    assert set(pred["probabilities"]) == {"negative", "positive"}
    assert sum(pred["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert pred["label"] == "positive" and pred["prediction_id"]
    assert body["model"]["uri"].startswith("TrainFlow/")

    many = client.post("/predict", json={"texts": [NEGATIVE_TEXT, POSITIVE_TEXT, "the app was so broken app"]})
    assert [p["label"] for p in many.json()["predictions"]] == ["negative", "positive", "negative"]


def test_concurrent_requests_get_their_own_answers(served):
    """Concurrent singles are micro-batched (padded together); each still gets its own text's answer."""
    client, _ = served
    texts = [f"the {thing} was {word} {thing}" for thing in ("meal", "book", "show") for word in
             ("wonderful", "dreadful", "quite lovely and very superb indeed", "boring")]
    alone = {t: client.post("/predict", json={"texts": t}).json()["predictions"][0] for t in texts}
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        together = list(pool.map(lambda t: client.post("/predict", json={"texts": t}), texts))
    for text, response in zip(texts, together):
        assert response.status_code == 200
        got = response.json()["predictions"][0]
        assert got["label"] == alone[text]["label"]
        np.testing.assert_allclose(list(got["probabilities"].values()),
                                   list(alone[text]["probabilities"].values()), atol=1e-4)


@pytest.mark.parametrize("payload, loc", [
    ({"texts": ""}, ["body", "texts"]),
    ({"texts": ["fine", "   "]}, ["body", "texts", 1]),
    ({"texts": 42}, ["body", "texts"]),
    ({"texts": ["fine", 7]}, ["body", "texts"]),
    ({"texts": ["a text"] * 9}, ["body", "texts"]),
    ({"texts": "x" * 301}, ["body", "texts"]),
    ({"texts": []}, ["body", "texts"]),
    ({"text": "wrong field"}, ["body", "texts"]),
])
def test_bad_predict_input_is_a_422_naming_the_field(served, payload, loc):
    client, _ = served
    response = client.post("/predict", json=payload)
    assert response.status_code == 422, response.text
    assert any(d["loc"][:len(loc)] == loc for d in response.json()["detail"]), response.json()
    assert client.get("/health").status_code == 200  # still serving


def test_malformed_json_is_a_422(served):
    client, _ = served
    response = client.post("/predict", content=b'{"texts": ["unclosed"', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_feedback_round_trip(served):
    client, cfg = served
    pred = client.post("/predict", json={"texts": NEGATIVE_TEXT}).json()["predictions"][0]
    ok = client.post("/feedback", json={"text": NEGATIVE_TEXT, "labels": "positive",
                                        "prediction_id": pred["prediction_id"]})
    assert ok.status_code == 200, ok.text
    plain = client.post("/feedback", json={"text": "the show was fine", "labels": ["negative"]})
    assert plain.status_code == 200, plain.text

    stored = read_feedback(cfg.feedback_root)
    row = stored[stored["prediction_id"] == pred["prediction_id"]].iloc[0]
    assert row["text"] == NEGATIVE_TEXT and row["labels"] == ["positive"] and row["predicted"] == [pred["label"]]
    assert row["timestamp"] == pd.Timestamp(ok.json()["timestamp"])
    assert stored["text"].tolist()[-1] == "the show was fine"

    for bad in ({"text": "x", "labels": "neutral"}, {"text": "x", "labels": ["positive", "negative"]},
                {"text": "", "labels": "positive"}, {"text": "x"}):
        response = client.post("/feedback", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert len(read_feedback(cfg.feedback_root)) == len(stored)


def test_health_model_and_openapi(served):
    client, _ = served
    assert client.get("/health").json()["status"] == "ok"
    model = client.get("/model").json()
    assert model["labels"] == ["negative", "positive"] and model["multi_label"] is False
    assert model["run_id"].startswith("TrainFlow/")
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/feedback", "/health", "/model", "/reload"} <= set(spec["paths"])
    assert client.get("/", follow_redirects=True).status_code == 200  # the demo


def test_gradio_client(served, tmp_path):
    from gradio_client import Client, handle_file

    client, _ = served
    gc = Client(str(client.base_url) + "/ui/", verbose=False)
    verdict, probs, why, question, details, *_ = gc.predict(POSITIVE_TEXT, api_name="/classify")
    assert probs["label"] == "positive" and "positive" in verdict
    assert "".join(piece["token"] for piece in why) == POSITIVE_TEXT  # attribution over the original text
    assert any(piece["class_or_confidence"] for piece in why)
    assert "right?" in question and "prediction id" in details

    upload = tmp_path / "reviews.csv"
    with upload.open("w", newline="") as f:
        csv.writer(f).writerows([["id", "text"], [1, NEGATIVE_TEXT], [2, POSITIVE_TEXT], [3, ""]])
    result, _preview, status = gc.predict(handle_file(str(upload)), "text", api_name="/classify_csv")
    out = pd.read_csv(result, keep_default_na=False)
    assert out["predicted"].tolist() == ["negative", "positive", ""] and "3 rows" in status
    assert {"prob_negative", "prob_positive", "model_version", "id"} <= set(out.columns)

    # its own output reads back (prob_* columns and all), and outputs over an hour old are removed
    from textclf.serve.ui import OUTPUT_DIR

    stale = OUTPUT_DIR / "stale-test" / "old-predictions.csv"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("text\n")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    again, _preview, status = gc.predict(handle_file(result), "text", api_name="/classify_csv")
    back = pd.read_csv(again, keep_default_na=False)
    assert back.columns.tolist() == out.columns.tolist() and "3 rows" in status
    assert back["predicted"].tolist() == ["negative", "positive", ""]
    assert back["prob_positive"].tolist()[:2] == out["prob_positive"].tolist()[:2]
    assert not stale.exists() and not stale.parent.exists() and Path(result).exists()

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no column 'body'"):
        gc.predict(handle_file(str(upload)), "body", api_name="/classify_csv")
    assert client.get("/health").status_code == 200


def test_basic_auth_from_env(served, model_uri, monkeypatch):
    from textclf.serve.app import create_app

    monkeypatch.setenv("TEXTCLF_SERVE_USER", "ada")
    monkeypatch.setenv("TEXTCLF_SERVE_PASSWORD", "s3cret")
    app = create_app(ServeConfig(model=model_uri, poll_seconds=0,
                                 feedback_root=str(SANDBOX / "serve-auth")))
    with serving(app) as url:
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.post(url + "/predict", json={"texts": "hi"}).status_code == 401
        assert httpx.post(url + "/predict", json={"texts": "hi"}, auth=("ada", "wrong")).status_code == 401
        assert httpx.post(url + "/predict", json={"texts": "hi"}, auth=("ada", "s3cret")).status_code == 200
        assert httpx.get(url + "/ui/", auth=("ada", "s3cret")).status_code == 200
        assert httpx.post(url + "/reload").status_code == 401
        assert httpx.post(url + "/reload", auth=("ada", "s3cret"), headers=CROSS_SITE[0]).status_code == 403
        assert httpx.post(url + "/reload", auth=("ada", "s3cret"), timeout=120).status_code == 200


def _register(client, experiment: str, name: str, folder) -> str:
    """A registered version of `folder`: an MLflow run holding it, as the registry step makes one."""
    run = client.create_run(experiment, tags={"metaflow.pathspec": f"TrainFlow/serve-test-{folder.name}"})
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.log_metric(run.info.run_id, "test_accuracy", 0.5)
    client.set_terminated(run.info.run_id)
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)


@pytest.fixture(scope="module")
def two_versions(model_uri, tmp_path_factory):
    """`champion` -> v1 (the toy model); v2 is the same network with its labels swapped, so
    its answers are visibly different. Named per session: the registry caches by name/version."""
    import json
    import shutil

    from textclf.config import RegistryConfig
    from textclf.registry.resolution import resolve_model
    from textclf.registry.tracking import client

    first = tmp_path_factory.mktemp("v1") / "model"
    shutil.copytree(resolve_model(model_uri).path, first)
    second = tmp_path_factory.mktemp("v2") / "model"
    shutil.copytree(first, second)
    config = json.loads((second / "config.json").read_text())
    config["id2label"] = {"0": "positive", "1": "negative"}
    config["label2id"] = {"positive": 0, "negative": 1}
    (second / "config.json").write_text(json.dumps(config))

    rcfg = RegistryConfig(tracking_uri=os.environ["MLFLOW_TRACKING_URI"], artifact_location=str(SANDBOX / "mlruns"),
                          experiment="serve-tests", model_name=f"textclf-serve-{SANDBOX.name}")
    c = client(rcfg)
    c.create_registered_model(rcfg.model_name)
    experiment = c.get_experiment_by_name(rcfg.experiment).experiment_id
    versions = [_register(c, experiment, rcfg.model_name, folder) for folder in (first, second)]
    c.set_registered_model_alias(rcfg.model_name, "champion", versions[0])
    return c, rcfg.model_name, versions


def test_alias_swap_without_downtime(two_versions):
    """Move `champion` while clients keep asking: no request fails, and answers switch to v2."""
    import threading

    from textclf.serve.app import create_app

    c, name, (v1, v2) = two_versions
    cfg = ServeConfig(model=f"models:/{name}@champion", poll_seconds=0.2,
                      feedback_root=str(SANDBOX / "serve-swap" / "feedback"))
    answers: list[tuple[int, str | None, str | None]] = []
    stop = threading.Event()

    def ask(client: httpx.Client) -> None:
        while not stop.is_set():
            r = client.post("/predict", json={"texts": [POSITIVE_TEXT, NEGATIVE_TEXT]})
            body = r.json() if r.status_code == 200 else {}
            answers.append((r.status_code, body.get("model", {}).get("version"),
                            body.get("predictions", [{}])[0].get("label")))

    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
        old = client.post("/predict", json={"texts": NEGATIVE_TEXT}).json()
        assert old["model"] == {"uri": cfg.model, "name": name, "version": v1, "alias": "champion"}
        threads = [threading.Thread(target=ask, args=(client,)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            while len(answers) < 10:
                time.sleep(0.05)
            c.set_registered_model_alias(name, "champion", v2)
            deadline = time.monotonic() + 120
            while sum(v == v2 for _, v, _ in answers) < 10 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert client.get("/model").json()["version"] == v2

        # feedback on a v1 prediction is stored as v1's, even though v2 answers now
        client.post("/feedback", json={"text": NEGATIVE_TEXT, "labels": "positive",
                                       "prediction_id": old["predictions"][0]["prediction_id"]}).raise_for_status()

        # the reload route: back to v1 at once, without waiting for the poller
        c.set_registered_model_alias(name, "champion", v1)
        reloaded = client.post("/reload").json()
        assert reloaded["swapped"] in (True, False) and reloaded["model"]["version"] == v1  # poller may win
        assert client.post("/reload").json()["swapped"] is False

    assert [a for a in answers if a[0] != 200] == []
    versions = [v for _, v, _ in answers]
    assert versions[0] == v1 and versions[-1] == v2 and set(versions) == {v1, v2}
    assert {label for _, v, label in answers if v == v1} == {"positive"}
    assert {label for _, v, label in answers if v == v2} == {"negative"}  # v2's swapped labels
    stored = read_feedback(cfg.feedback_root)
    assert stored["model_version"].tolist() == [v1] and stored["predicted"].tolist() == [["negative"]]


def test_reload_refuses_other_sites_and_a_broken_target_degrades_health(two_versions, tmp_path):
    """A page on another site cannot make a browser post /reload; a champion that cannot be loaded
    is a 503 with the reason, /health says "degraded" (the old version still answers) until a
    reload succeeds."""
    from textclf.serve.app import create_app

    c, name, (v1, _v2) = two_versions
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    v3 = _register(c, c.get_experiment_by_name("serve-tests").experiment_id, name, broken)
    cfg = ServeConfig(model=f"models:/{name}@champion", poll_seconds=0,
                      feedback_root=str(SANDBOX / "serve-degraded" / "feedback"))
    c.set_registered_model_alias(name, "champion", v1)
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=120) as client:
        for headers in CROSS_SITE:
            refused = client.post("/reload", headers=headers)
            assert refused.status_code == 403 and "cross-site" in refused.json()["detail"], (headers, refused.text)
        same = client.post("/reload", headers={"origin": url, "sec-fetch-site": "same-origin"})
        assert same.status_code == 200 and same.json()["swapped"] is False

        c.set_registered_model_alias(name, "champion", v3)
        failed = client.post("/reload")
        assert failed.status_code == 503 and "could not load" in failed.json()["detail"], failed.text
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["reason"] == failed.json()["detail"]
        assert health["model_version"] == v1
        assert client.post("/predict", json={"texts": POSITIVE_TEXT}).json()["model"]["version"] == v1

        c.set_registered_model_alias(name, "champion", v1)
        assert client.post("/reload").status_code == 200
        assert client.get("/health").json() == {"status": "ok", "model_version": v1, "reason": None}


def test_cli_logs_alias_swaps(two_versions, tmp_path):
    """`textclf serve` shows who is serving what: a swap is an INFO line in its output."""
    import subprocess
    import sys

    from textclf.ports import free_port

    c, name, (v1, v2) = two_versions
    c.set_registered_model_alias(name, "champion", v1)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "textclf.cli", "serve", "--model", f"models:/{name}@champion",
                               "--port", str(port), "--poll-seconds", "0", "--feedback-root", str(tmp_path / "fb")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)
    try:
        _wait_for(server, port)
        c.set_registered_model_alias(name, "champion", v2)
        assert httpx.post(f"http://127.0.0.1:{port}/reload", timeout=120).json()["swapped"] is True
    finally:
        c.set_registered_model_alias(name, "champion", v1)
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"INFO:     serving models:/{name}@champion version {v2} (was {v1})" in output, output[-3000:]


def _wait_for(server, port: int) -> None:
    deadline = time.monotonic() + 300
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError(server.stdout.read() if server.poll() is not None else "the server did not start")


def test_cli_serves_a_model_folder_on_localhost(model_uri, tmp_path):
    """`textclf serve --model <folder>` binds 127.0.0.1; a model it cannot load is one clear line."""
    import subprocess
    import sys

    from textclf.ports import free_port
    from textclf.registry.resolution import resolve_model

    cli = [sys.executable, "-m", "textclf.cli", "serve"]
    bad = subprocess.run([*cli, "--model", str(tmp_path / "missing")], capture_output=True, text=True,
                         env=os.environ, timeout=300)
    assert bad.returncode == 2 and "cannot load model" in bad.stderr and "Traceback" not in bad.stderr

    port = free_port()
    server = subprocess.Popen([*cli, "--model", resolve_model(model_uri).path, "--port", str(port),
                               "--feedback-root", str(tmp_path / "feedback")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)
    try:
        _wait_for(server, port)
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"texts": POSITIVE_TEXT})
        assert r.json()["predictions"][0]["label"] == "positive"
    finally:
        server.terminate()
        server.wait(timeout=30)
