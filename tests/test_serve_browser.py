"""The demo in a real browser: Debian chromium driven by Playwright types a text, reads the
predicted label, sees a clear message for bad input, and round-trips a CSV through the batch tab."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import SANDBOX
from serving import serving
from textclf.config import ServeConfig
from textclf.monitoring.feedback import read_feedback

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (scripts/test.sh installs it)")
SCREENSHOTS = Path("/tmp/textclf-screenshots")


@pytest.fixture(scope="module")
def model_uri(trained_run) -> str:
    return trained_run.pathspec


@pytest.fixture(scope="module")
def page(model_uri):
    from playwright.sync_api import sync_playwright

    from textclf.serve.app import create_app

    cfg = ServeConfig(model=model_uri, poll_seconds=0, feedback_root=str(SANDBOX / "serve-browser" / "feedback"))
    with serving(create_app(cfg)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(url + "/")  # redirects to the demo under /ui/
        page.wait_for_selector("#text-input textarea")
        page.feedback_root = cfg.feedback_root
        yield page
        browser.close()


def test_single_text_label_attribution_and_feedback(page):
    SCREENSHOTS.mkdir(exist_ok=True)
    assert not page.locator("#verdict").is_visible()  # no empty boxes before the first answer
    page.screenshot(path=str(SCREENSHOTS / "first.png"), full_page=True)
    page.fill("#text-input textarea", "the film was truly wonderful film")
    page.click("#classify")
    try:
        page.locator("#verdict").filter(has_text="positive").wait_for()
    except PlaywrightTimeout:  # flaked in 2 runs of 10 on 2026-12-07: keep what the page showed
        page.screenshot(path=str(SCREENSHOTS / "single-timeout.png"), full_page=True)
        raise AssertionError(f"no positive verdict; the page read: {page.locator('body').inner_text()[:3000]!r}")
    assert "positive" in page.locator("#probabilities").inner_text()
    assert "wonderful" in page.locator("#attribution").inner_text()
    assert not page.locator("#right-label").is_visible()  # no label offered before the user says it is wrong
    page.screenshot(path=str(SCREENSHOTS / "single.png"), full_page=True)

    page.click("#thumbs-up")
    page.locator("#feedback-status").filter(has_text="confirmation").wait_for()
    page.click("#thumbs-down")
    page.locator("#right-label input").click()
    page.get_by_role("option", name="negative").click()
    page.click("#send-feedback")
    page.locator("#feedback-status").filter(has_text="correction").wait_for()
    stored = read_feedback(page.feedback_root)
    assert stored["text"].tolist() == ["the film was truly wonderful film"] * 2
    assert stored["kind"].tolist() == ["confirmation", "correction"] and stored["linked"].all()
    assert stored["labels"].tolist() == [["positive"], ["negative"]] and stored["predicted"][1] == ["positive"]

    page.fill("#text-input textarea", "the film was truly wonderful film, edited")  # the answer was for the old text
    page.locator("#verdict").wait_for(state="hidden")


def test_the_model_tab_is_a_table(page):
    page.get_by_role("tab", name="Model").click()
    table = page.locator("#model-table")
    table.filter(has_text="test accuracy").wait_for()
    assert "95 % interval" in table.inner_text() and "metaflow_run" in table.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)
    page.get_by_role("tab", name="Single text").click()


def test_empty_text_shows_a_message(page):
    page.fill("#text-input textarea", "   ")
    page.click("#classify")
    page.get_by_text("Empty text").first.wait_for()


def test_batch_csv_round_trip(page, tmp_path):
    upload = tmp_path / "reviews.csv"
    with upload.open("w", newline="") as f:
        csv.writer(f).writerows([["text", "id"], ["the hotel was really awful hotel", 1],
                                 ["the game was so brilliant game", 2]])
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.set_input_files("#csv-upload input[type=file]", str(upload))
    page.locator("#csv-upload").filter(has_text="reviews.csv").wait_for()
    page.click("#classify-csv")
    page.locator("#batch-status").filter(has_text="2 rows classified").wait_for()
    table = page.locator("#csv-preview").inner_text()
    assert "negative" in table and "positive" in table
    with page.expect_download() as download:
        page.locator("#csv-download a").first.click()
    got = Path(download.value.path()).read_text()
    assert got.splitlines()[0].startswith("text,id,predicted,model_version")
    assert ",negative," in got and ",positive," in got
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)
