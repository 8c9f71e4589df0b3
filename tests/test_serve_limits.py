"""A serving API no one can break for others, against a real uvicorn serving the toy model: a text
the tokenizer cannot take fails alone (in the micro-batcher and over HTTP), bodies and fields are
bounded (413 / 422 that state the limit and do not echo the input), the limits are in the OpenAPI
schema, and a request naming another Host is refused."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from conftest import SANDBOX
from serving import serving
from textclf.config import ServeConfig

GOOD = "the film was truly wonderful film"
POISON = "bad \ud800 film"  # a lone surrogate: valid JSON ("\ud800"), no text a tokenizer takes
LIMITS = dict(max_texts=8, max_chars=300, max_body_bytes=20_000, max_label_chars=20, max_labels=4)


@pytest.fixture(scope="module")
def model_uri(trained_run) -> str:
    return trained_run.pathspec


@pytest.fixture(scope="module")
def client(model_uri):
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=model_uri, feedback_root=str(SANDBOX / "serve-limits" / "feedback"), poll_seconds=0,
                      batch_wait_ms=50, **LIMITS)
    with serving(create_app(cfg)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def raw_json(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """POST a JSON text as written (json= would refuse to encode a lone surrogate)."""
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


def locs(response: httpx.Response) -> list[list]:
    return [d["loc"] for d in response.json()["detail"]]


def test_the_batcher_answers_everyone_but_the_poisoned_request(model_uri):
    """Driven directly (no validation in front): 29 good requests and one with a bad third text,
    all in one batch; only that one fails, naming the text, and the rest get their own answers."""
    from textclf.registry.resolution import resolve_model
    from textclf.serve.batching import MicroBatcher
    from textclf.serve.model_holder import load
    from textclf.serve.schemas import BadInput

    served = load(model_uri, resolve_model(model_uri))
    batches = []

    def model():
        batches.append(threading.get_ident())
        return served

    texts = [f"the {thing} was {word} {thing}" for thing in ("meal", "book", "show") for word in
             ("wonderful", "dreadful", "quite lovely", "boring", "superb", "awful", "fine", "broken", "great", "bad")]
    alone = served.predictor.predict_proba(texts[:29])
    batcher = MicroBatcher(model, max_batch=64, wait_ms=500)
    batcher.start()
    try:
        futures = [batcher.submit([t]) for t in texts[:29]]
        poisoned = batcher.submit([GOOD, texts[0], POISON])
        answers = [f.result(timeout=120) for f in futures]
        with pytest.raises(BadInput) as refused:
            poisoned.result(timeout=120)
    finally:
        batcher.stop()
    assert len(batches) == 1  # they really shared one batch
    assert refused.value.loc == ["texts", 2] and "\ud800" not in refused.value.msg
    for (who, probs), expected in zip(answers, alone):
        assert who is served
        np.testing.assert_allclose(probs[0], expected, atol=1e-4)


def test_without_a_wait_requests_that_queue_during_a_pass_share_the_next_one():
    """Batching without a wait (the default, batch_wait_ms 0, so a lone request is not held back)
    still batches: requests that arrive while a pass runs are scored together in the next one."""
    from types import SimpleNamespace

    from textclf.serve.batching import MicroBatcher

    running, release, passes = threading.Event(), threading.Event(), []

    def predict_proba(texts):
        passes.append(list(texts))
        running.set()
        release.wait(30)
        return np.zeros((len(texts), 2), np.float32)

    served = SimpleNamespace(lock=threading.Lock(), predictor=SimpleNamespace(predict_proba=predict_proba))
    batcher = MicroBatcher(lambda: served, max_batch=64, wait_ms=ServeConfig().batch_wait_ms)
    batcher.start()
    try:
        first = batcher.submit(["first"])
        assert running.wait(30)  # scored alone, while nothing else had arrived
        later = [batcher.submit([f"later {i}"]) for i in range(5)]
        release.set()
        assert all(f.result(timeout=30)[1].shape == (1, 2) for f in [first, *later])
    finally:
        release.set()
        batcher.stop()
    assert passes == [["first"], [f"later {i}" for i in range(5)]]


def test_a_lone_surrogate_among_many_concurrent_requests_fails_alone(client):
    bodies = [f'{{"texts": "the show was {w} show"}}' for w in ["superb", "awful", "lovely", "dreadful"] * 7]
    bodies.insert(13, '{"texts": ["fine", "bad \\ud800 film"]}')
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        replies = list(pool.map(lambda body: raw_json(client, "/predict", body), bodies))
    statuses = [r.status_code for r in replies]
    assert statuses == [200] * 13 + [422] + [200] * 15, statuses
    assert ["body", "texts", 1] in locs(replies[13]) and "bad" not in replies[13].text


@pytest.mark.parametrize("path, text, loc", [
    ("/predict", '{"texts": ["fine", "a\\u0000b"]}', ["body", "texts", 1]),
    ("/predict", '{"texts": "bad \\udfff"}', ["body", "texts", 0]),
    ("/feedback", '{"text": "a\\u0000b", "labels": "positive"}', ["body", "text"]),
])
def test_unencodable_or_nul_text_is_a_422_naming_the_field(client, path, text, loc):
    response = raw_json(client, path, text)
    assert response.status_code == 422 and loc in locs(response), response.text


def test_a_lone_surrogate_in_feedback_is_a_422(client):
    response = raw_json(client, "/feedback", '{"text": "bad \\ud800 film", "labels": "positive"}')
    assert response.status_code == 422 and ["body", "text"] in locs(response), response.text
    assert client.get("/health").json()["status"] == "ok"


def test_a_body_over_the_limit_is_a_413_before_it_is_read(client):
    big = b'{"texts": "' + b"x" * 50_000 + b'"}'
    declared = client.post("/predict", content=big, headers={"content-type": "application/json"})

    def chunks():  # no Content-Length: httpx sends it chunked
        for start in range(0, len(big), 4096):
            yield big[start:start + 4096]

    chunked = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.json() == {"detail": "the request body is over 20000 bytes"}
    assert client.post("/feedback", content=big, headers={"content-type": "application/json"}).status_code == 413


@pytest.mark.parametrize("path, body, loc, limit", [
    ("/predict", {"texts": "x" * 10_000}, ["body", "texts", 0], "300"),
    ("/predict", {"texts": ["a text"] * 9}, ["body", "texts"], "8"),
    ("/predict", {"texts": "fine", "y" * 5000: 1}, ["body", "y" * 39 + "…"], None),
    ("/feedback", {"text": "fine", "labels": "positive", "prediction_id": "f" * 10_000}, ["body", "prediction_id"],
     "[0-9a-f]{32}"),
    ("/feedback", {"text": "fine", "labels": "p" * 5000}, ["body", "labels", 0], "20"),
    ("/feedback", {"text": "fine", "labels": ["positive"] * 5}, ["body", "labels"], "4"),
])
def test_a_422_states_the_limit_without_echoing_the_input(client, path, body, loc, limit):
    response = client.post(path, json=body)
    assert response.status_code == 422 and loc in locs(response), response.text
    assert len(response.content) < 600, response.text  # the input was 5-10 kB
    if limit:
        assert limit in response.text


def test_prediction_ids_have_the_documented_shape(client):
    [pred] = client.post("/predict", json={"texts": GOOD}).json()["predictions"]
    assert re.fullmatch(r"[0-9a-f]{32}", pred["prediction_id"])
    ok = client.post("/feedback", json={"text": GOOD, "labels": "negative", "prediction_id": pred["prediction_id"]})
    assert ok.status_code == 200 and ok.json()["prediction_id"] == pred["prediction_id"]
    assert client.post("/feedback", json={"text": GOOD, "labels": "negative",
                                          "prediction_id": pred["prediction_id"].upper()}).status_code == 422


def test_the_openapi_schema_states_the_configured_limits(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    texts = schemas["PredictRequest"]["properties"]["texts"]["anyOf"]
    assert {"type": "string", "minLength": 1, "maxLength": 300} in texts
    [many] = [t for t in texts if t["type"] == "array"]
    assert many["maxItems"] == 8 and many["items"]["maxLength"] == 300
    feedback = schemas["FeedbackRequest"]["properties"]
    assert feedback["text"]["maxLength"] == 300
    assert {"type": "string", "pattern": "^[0-9a-f]{32}$"} in feedback["prediction_id"]["anyOf"]
    assert [t["maxLength"] for t in feedback["labels"]["anyOf"] if t["type"] == "string"] == [20]


def test_a_request_for_another_host_is_refused(client):
    assert client.get("/health", headers={"host": "evil.example"}).status_code == 400
    assert client.post("/predict", json={"texts": GOOD}, headers={"host": "evil.example:80"}).status_code == 400
    port = client.base_url.port
    assert client.get("/health", headers={"host": f"localhost:{port}"}).status_code == 200


def test_trusted_hosts_default_by_bind_address():
    from textclf.serve.guards import trusted_hosts

    assert trusted_hosts(ServeConfig(host="127.0.0.1")) == ["127.0.0.1", "localhost", "[::1]"]
    assert trusted_hosts(ServeConfig(host="0.0.0.0")) == ["*"]  # the container: reached by the names its deployment gives
    assert trusted_hosts(ServeConfig(host="0.0.0.0", trusted_hosts=["textclf.example.com"])) == ["textclf.example.com"]
