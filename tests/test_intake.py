"""Data intake that never lies: every file of the corpus is read right or refused in one line, the
fast check names the same problem, and the block reader returns exactly what pandas reads.

The corpus (`tests/corpus`, written by `make_corpus.py`) holds bad and valid files a user could
hand TrainFlow; `expected.json` gives each one's exact outcome.
"""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from textclf.config import compose
from textclf.data.blocks import plan_blocks, read_block, sniff
from textclf.data.preprocess import preprocess
from textclf.data.sources import check_sources
from textclf.errors import DataError

CORPUS = ROOT / "tests" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
BAD = sorted(name for name, e in EXPECTED.items() if "error" in e)
VALID = sorted(name for name, e in EXPECTED.items() if "error" not in e)
SYNC = "model=tiny data.dask.scheduler_address=sync"


def overrides(name: str) -> str:
    return " ".join(f"{k}={v}" for k, v in EXPECTED[name]["overrides"].items())


def corpus_config(name: str):
    return compose(f"{SYNC} data.source={CORPUS / name} {overrides(name)}")


def test_the_corpus_is_big_enough_to_mean_something():
    assert len(EXPECTED) >= 25 and len(BAD) >= 10 and len(VALID) >= 10


@pytest.mark.parametrize("name", BAD)
def test_a_bad_file_is_refused_in_one_line_naming_it(name, tmp_path):
    with pytest.raises(DataError) as err:
        preprocess(corpus_config(name), str(tmp_path / "out"))
    message = str(err.value)
    assert EXPECTED[name]["error"] in message, message
    assert name in message and "\n" not in message, message
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("name", VALID)
def test_a_valid_file_is_read_right(name, tmp_path):
    manifest = preprocess(corpus_config(name), str(tmp_path / "out"))
    expected = EXPECTED[name]
    assert manifest["rows_read"] == expected["rows_read"]
    assert manifest["rows_kept"] == expected["rows_kept"]
    classes = {label: sum(s["classes"][label] for s in manifest["splits"].values())
               for label in manifest["id2label"].values()}
    assert classes == expected["classes"]
    assert all(manifest["splits"][s]["rows"] > 0 for s in ("train", "val", "test"))


def test_quoted_newlines_survive_many_small_blocks(tmp_path):
    """200-byte blocks cut a 60-row file with three-line texts into dozens of partitions."""
    cfg = corpus_config("quoted_newlines.csv")
    layout = sniff(cfg.data.source, "csv", "text", "label")
    blocks = plan_blocks(layout, cfg.data.dask.blocksize)
    assert len(blocks) >= 15
    texts = pd.concat([read_block(b, layout) for b in blocks])["text"].tolist()
    assert texts == pd.read_csv(CORPUS / "quoted_newlines.csv", dtype=str)["text"].tolist()
    assert all(t.count("\n") == 2 for t in texts)


def test_the_summary_tells_what_happened_to_the_rows(tmp_path):
    from textclf.data.summary import summary_text

    cfg = corpus_config("repeated_header.csv")
    text = summary_text(preprocess(cfg, str(tmp_path / "out")), cfg.data.min_count)
    assert "61 rows from" in text and "(comma-separated)" in text
    assert re.search(r"dropped as bad +1 \(a repeated header row 1\); first:", text), text
    assert "row 31: a repeated header row" in text
    assert "splits" in text and "np.int64" not in text


FAST = ("file is empty", "whitespace", "missing column", "missing field", "not valid UTF-8", "not a text file",
        "fields where the header has", "need at least 2 classes", "not valid JSON", "JSON object per line")


@pytest.mark.parametrize("name", [n for n in BAD if any(f in EXPECTED[n]["error"] for f in FAST)])
def test_the_fast_check_names_the_problem_the_flow_would(name, tmp_path):
    with pytest.raises(DataError) as flow_error:
        preprocess(corpus_config(name), str(tmp_path / "out"))
    done = subprocess.run([sys.executable, "-m", "textclf.cli", "data", "check", str(CORPUS / name),
                           *overrides(name).split()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == f"textclf data: {flow_error.value}"


def test_the_fast_check_takes_the_file_as_an_override_too():
    name = next(n for n in BAD if "fields where the header has" in EXPECTED[n]["error"])
    done = subprocess.run([sys.executable, "-m", "textclf.cli", "data", "check", f"data.source={CORPUS / name}",
                           *overrides(name).split()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"textclf data: {CORPUS / name} row "), done.stderr


def test_the_fast_check_reads_only_the_head_of_a_big_file(tmp_path):
    big = tmp_path / "big.csv"
    with big.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(200_000):
            writer.writerow([f"row {i} with a text,\nover two lines", "positive" if i % 2 else "negative"])
    found = check_sources(compose(f"data.source={big}").data, head_bytes=1 << 16)[str(big)]
    assert not found["whole_file"] and 0 < found["rows"] < 5000
    assert set(found["classes"]) == {"negative", "positive"}


# --------------------------------------------------------------------------- the reader, by property

# A bare carriage return in an unquoted field is not CSV any reader agrees on (CRLF files are in the corpus).
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00\r"),
               min_size=1, max_size=40).filter(lambda t: t.strip() != "")
PLAIN = TEXT.filter(lambda t: not set(t) & set('\t\n\r"') and t == t.strip())  # what TSV without quoting can hold
LABELS = st.sampled_from(["positive", "negative", "mixed, \"unsure\"", "ümlaut"])


def write(fmt: str, rows: list[tuple[str, str]], bom: bool) -> bytes:
    if fmt == "jsonl":
        body = "".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in rows)
    else:
        buf = io.StringIO()
        frame = pd.DataFrame(rows, columns=["text", "label"])
        frame.to_csv(buf, index=False, sep="," if fmt == "csv" else "\t",
                     quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE)
        body = buf.getvalue()
    return (b"\xef\xbb\xbf" if bom else b"") + body.encode()


def pandas_reads(path: Path, fmt: str) -> list[tuple[str, str]]:
    if fmt == "jsonl":
        frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
    else:
        frame = pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False,
                            na_values=[""], encoding="utf-8-sig",
                            quoting=csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE)
    return list(zip(frame["text"], frame["label"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), fmt=st.sampled_from(["csv", "tsv", "jsonl"]), bom=st.booleans(),
       blocksize=st.sampled_from([1, 64, 1024, 4096, 1 << 20]))
def test_the_block_reader_returns_exactly_the_rows_pandas_reads(tmp_path, data, fmt, bom, blocksize):
    rows = data.draw(st.lists(st.tuples(PLAIN if fmt == "tsv" else TEXT, LABELS), min_size=1, max_size=30))
    path = tmp_path / f"random.{fmt}"
    path.write_bytes(write(fmt, rows, bom))
    layout = sniff(str(path), fmt, "text", "label")
    blocks = plan_blocks(layout, blocksize)
    got = pd.concat([read_block(b, layout) for b in blocks])
    assert list(zip(got["text"], got["label"])) == pandas_reads(path, fmt) == rows
    assert [b.first_row for b in blocks] == sorted({b.first_row for b in blocks})  # rows numbered in order


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(TEXT, LABELS), min_size=1, max_size=60), blocksize=st.sampled_from([256, 4096]))
def test_the_dask_frame_of_a_file_is_the_file(tmp_path, rows, blocksize):
    from textclf.data.sources import Source, read_source

    path = tmp_path / "random.csv"
    path.write_bytes(write("csv", rows, bom=False))
    cfg = compose(f"{SYNC} data.source={path} data.dask.blocksize={blocksize}").data
    frame = read_source(Source(str(path), None, "csv"), cfg).compute()
    assert list(zip(frame["text"], frame["label"])) == rows


# --------------------------------------------------------------------------- through the flow

def _earlier_model(trained_run) -> dict[str, str]:
    import hashlib

    folder = Path(trained_run["end"].task["model_uri"].data)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.integration
@pytest.mark.parametrize("name, stops_at", [("latin1_late.csv", "start"), ("broken_line.jsonl", "start"),
                                            ("missing_column.csv", "start"), ("few_after_dedupe.csv", "preprocess")])
def test_the_flow_stops_a_bad_file_early_in_one_line_and_leaves_earlier_runs_alone(trained_run, name, stops_at):
    from mlflow import MlflowClient

    from conftest import latest_run, run_flow

    before = _earlier_model(trained_run)
    done = run_flow("train_flow.py", f"data.source={CORPUS / name} {overrides(name)}", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and EXPECTED[name]["error"] in output, output[-3000:]
    assert "Traceback" not in output
    run = latest_run("TrainFlow")
    reached = {step.id for step in run}
    assert reached == {"start", stops_at}, reached  # nothing after the step that found the problem ran
    assert _earlier_model(trained_run) == before
    if stops_at == "start":  # before anything was opened: no MLflow run left behind
        assert "mlflow_run_id" not in run["start"].task
    else:  # the run that was opened is closed, not left RUNNING
        mlflow_run = run["start"].task["mlflow_run_id"].data
        assert MlflowClient().get_run(mlflow_run).info.status == "FAILED"


@pytest.mark.integration
def test_a_valid_file_with_quoted_newlines_and_a_bom_trains(tmp_path):
    from conftest import TINY, latest_run, run_flow

    text = (CORPUS / "quoted_newlines.csv").read_bytes()
    source = tmp_path / "multiline_bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + text.replace(b"review", b"critique"))
    done = run_flow("train_flow.py", f"data.source={source} {TINY} train.epochs=1 data.dask.blocksize=300")
    assert "(comma-separated)" in done.stdout + done.stderr
    run = latest_run("TrainFlow")
    assert run.successful and run["end"].task["manifest"].data["rows_kept"] == 60


def _as_a_shell_starts_it() -> None:
    """SIGINT at its default, as a terminal's shell starts a command. pytest itself may run with it
    ignored (a background job of a non-interactive shell does), and children inherit that: the
    flow's runtime and steps then ignore Ctrl-C, and only torchrun, which sets its own handler once
    it has imported torch, would see it. In two fresh-clone runs on a loaded machine the signal came
    before that, and the run went on to finish."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.integration
def test_an_interrupted_run_ends_its_mlflow_run_killed(toy_csv, tmp_path):
    """Ctrl-C in the terminal (SIGINT to the flow's process group) while the train step runs."""
    import os
    import signal
    import time

    from mlflow import MlflowClient

    from conftest import TINY, latest_run

    cmd = [sys.executable, str(ROOT / "flows" / "train_flow.py"), "--no-pylint", "--config-value", "config",
           f"data.source={toy_csv} {TINY}", "run"]
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_as_a_shell_starts_it)
        deadline = time.monotonic() + 300
        while "launching (" not in log.read_text() and time.monotonic() < deadline:  # inside the step
            time.sleep(0.2)
        assert "launching (" in log.read_text(), "the train step did not launch torchrun within 300 s"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    assert proc.returncode != 0, log.read_text()[-3000:]
    run = latest_run("TrainFlow")
    mlflow_run = run["start"].task["mlflow_run_id"].data
    assert MlflowClient().get_run(mlflow_run).info.status == "KILLED", log.read_text()[-3000:]
