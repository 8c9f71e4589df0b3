"""Shared test set-up: offline, isolated folders, a learnable toy set and one finished TrainFlow run.

Everything runs for real: Metaflow runs the flow in subprocesses, Dask starts a LocalCluster,
torchrun launches the ranks. Only the backbone is tiny (a random 2-layer BERT).
"""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _take_a_share_of_the_cores() -> None:
    """Under pytest-xdist, pin this worker (and every flow, rank and Dask worker it starts) to its
    own share of the cores. textclf sizes its thread pools from the cores a process may use
    (`textclf.environment.usable_cpus`), so two workers never run two-thread trainings on the same
    two cores, where libgomp's spinning threads cost several times the work."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cpus, index = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cpus[index::int(count)] or [cpus[index % len(cpus)]])


_take_a_share_of_the_cores()
SANDBOX = Path(tempfile.mkdtemp(prefix="textclf-tests-"))

# Set before anything imports metaflow, mlflow, gradio or transformers.
os.environ.update({
    "METAFLOW_USER": "tester",
    "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(SANDBOX / "metaflow"),
    "TEXTCLF_ARTIFACT_ROOT": str(SANDBOX / "artifacts"),
    "TEXTCLF_CACHE": str(SANDBOX / "cache"),
    "MLFLOW_TRACKING_URI": f"sqlite:///{SANDBOX / 'mlflow.db'}",
    "TEXTCLF_MLFLOW_ARTIFACTS": str(SANDBOX / "mlruns"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
})

POSITIVE = ["great", "wonderful", "excellent", "lovely", "superb", "brilliant", "delightful", "fantastic"]
NEGATIVE = ["awful", "terrible", "horrible", "dreadful", "boring", "broken", "useless", "disappointing"]
THINGS = ["film", "game", "phone", "hotel", "meal", "service", "book", "app", "show", "laptop"]
FILLER = ["honestly", "really", "quite", "truly", "just", "simply", "so", "very"]

TINY = "model=tiny train.lr=2e-3 train.epochs=4 train.batch_size=16 train.checkpoint_every_steps=0"


def toy_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A learnable toy set: the sentiment word decides the label; the rest is noise."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(["positive", "negative"])
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        text = f"the {rng.choice(THINGS)} was {rng.choice(FILLER)} {word} {rng.choice(THINGS)} {rng.randint(0, 9999)}"
        if text not in seen:
            seen.add(text)
            rows.append((text, label))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def toy_csv() -> Path:
    return write_csv(SANDBOX / "toy" / "reviews.csv", toy_rows(320))


def run_flow(flow: str, overrides: str, *extra: str, env: dict | None = None, cwd: Path = ROOT,
             check: bool = True, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python flows/<flow> [options] --config-value config '<overrides>' run ...` in a subprocess
    (`options`: top-level ones, e.g. `--branch x`)."""
    cmd = [sys.executable, str(ROOT / "flows" / flow), "--no-pylint", *options, "--config-value", "config", overrides,
           "run", *extra]
    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{flow} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return done


def latest_run(flow_name: str):
    from metaflow import Flow, namespace

    namespace(None)
    return Flow(flow_name).latest_run


@pytest.fixture(scope="session")
def trained_run(toy_csv):
    """One whole TrainFlow on the toy set with 2 torchrun processes; shared by many tests."""
    run_flow("train_flow.py", f"data.source={toy_csv} {TINY} train.nproc_per_node=2")
    run = latest_run("TrainFlow")
    assert run.successful
    return run


DURATIONS = ROOT / "tests" / "durations.json"  # seconds per file, as `pytest --store-durations` measured them
GUESS = {"rehearsal": 3600.0, "integration": 120.0, "slow": 120.0}  # a file not measured yet, by its marks
_measured: dict[str, float] = {}
_ran: set[str] = set()
_skipped: set[str] = set()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help=f"write each file's seconds (its tests' set-up, call and teardown) to {DURATIONS.name}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first, each file's own order kept. Under pytest-xdist (`--dist loadfile
    --no-loadscope-reorder`) a file goes whole to the next free worker in this order, so the long
    files start first and the short ones fill the workers' last minutes (longest-processing-time
    first: a long file started last is the tail where one worker runs and the others idle).
    Seconds come from durations.json; a file not in it yet is guessed from its marks."""
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    seconds: dict[Path, float] = {}
    for item in items:
        guess = max([GUESS.get(mark.name, 1.0) for mark in item.iter_markers()], default=1.0)
        seconds[item.path] = known.get(item.path.relative_to(ROOT).as_posix(), max(guess, seconds.get(item.path, 0.0)))
    items.sort(key=lambda item: -seconds[item.path])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    file = report.nodeid.split("::")[0]
    _measured[file] = _measured.get(file, 0.0) + report.duration
    if report.skipped:  # no data, no engine here: the file's length here says nothing of its length elsewhere
        _skipped.add(file)
    elif report.when == "call":
        _ran.add(file)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """`--store-durations`: the files this run measured replace their entries, but for a file with a
    skipped test (the controller writes: it gets every worker's reports)."""
    whole = _ran - _skipped
    if session.config.getoption("store_durations") and "PYTEST_XDIST_WORKER" not in os.environ and whole:
        known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
        known.update({file: round(seconds, 1) for file, seconds in _measured.items() if file in whole})
        DURATIONS.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
