"""The API as its schema describes it: schemathesis generates requests (valid and invalid) from the
live /openapi.json and checks every answer (no 5xx, documented status codes, bodies and content
types); and /docs and /redoc render in Chromium with every request off this machine refused."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import SANDBOX
from serving import serving
from textclf.config import ServeConfig

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def base_url(trained_run):
    from textclf.serve.app import create_app

    cfg = ServeConfig(model=trained_run.pathspec, poll_seconds=0, max_texts=8, max_chars=300,
                      feedback_root=str(SANDBOX / "serve-docs" / "feedback"))
    with serving(create_app(cfg)) as url:
        yield url


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_the_api_keeps_its_schema(base_url, mode):
    """Cases for every operation but /reload (each reload loads the model again; its own tests
    cover it), bounded so the run takes seconds. Driven through Hypothesis directly: schemathesis'
    pytest plugin (`from_fixture`) does not work with pytest 9 (it sets `node._nodeid`)."""
    from schemathesis import checks

    schema = schemathesis.openapi.from_url(base_url + "/openapi.json").exclude(path="/reload")
    seen: set[str] = set()

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        seen.add(f"{case.method} {case.path}")
        case.call_and_validate(checks=[checks.not_a_server_error, checks.status_code_conformance,
                                       checks.response_schema_conformance, checks.content_type_conformance])

    answers_as_documented()
    assert seen >= {"POST /predict", "POST /feedback"}, seen


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (scripts/test.sh installs it)")
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_render_offline(base_url, path):
    from playwright.sync_api import sync_playwright

    refused: list[str] = []

    def loopback_only(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.route("**/*", loopback_only)
            page.goto(base_url + path)
            page.get_by_text("Feedback", exact=True).first.wait_for()  # an operation, drawn by the docs' script
            body = page.locator("body").inner_text()
        finally:
            browser.close()
    assert "textclf" in body and "Predict" in body and "Reload" in body, (body[:2000], refused)
