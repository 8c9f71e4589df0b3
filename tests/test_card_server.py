"""The local browser view of runs: Metaflow's own `card server` (the Metaflow UI ships only as a
container image), showing a finished TrainFlow's lineage card in Chromium."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, SANDBOX
from support.processes import serving

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path("/tmp/textclf-screenshots")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (scripts/test.sh installs it)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_card_server_shows_a_runs_lineage_card(trained_run):
    from playwright.sync_api import sync_playwright

    registration = trained_run["register"].task.data.registration
    fingerprint = trained_run["preprocess"].task.data.manifest["fingerprint"]["sha256"]
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, str(ROOT / "flows" / "train_flow.py"), "--no-pylint", "card", "server",
           "--run-id", trained_run.id, "--port", url.rsplit(":", 1)[1]]
    with serving(cmd, f"{url}/runinfo", SANDBOX / "card-server.log"), sync_playwright() as p:
        cards = httpx.get(f"{url}/runinfo", timeout=30).json()["cards"]
        summary = next(c["card"] for c in cards if "/end/" in c["task"])  # the end step's lineage card
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(60_000)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
                   else route.abort())  # the viewer asks a font CDN; offline, nothing else leaves
        page.goto(url + "/")
        page.wait_for_selector(f"#selector option[value='{summary}']", state="attached")
        page.select_option("#selector", summary)
        frame = page.frame_locator("#card-frame")
        frame.get_by_text("Lineage").first.wait_for()
        text = frame.locator("body").inner_text()
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "card-server-lineage.png"), full_page=True)
        browser.close()
    assert f"{registration['model_name']} v{registration['version']}" in text
    assert fingerprint in text and trained_run.pathspec in text
    assert (SCREENSHOTS / "card-server-lineage.png").stat().st_size > 20_000
