"""Every benchmark that reports an accuracy, run as a user runs it at its tiniest size on SST-2: each
accuracy must be there, finite and above chance. A bench that scored nothing (0.0), or compared
label names with ids, fails here instead of reporting a ratio of two equal zeros (issue 21).

bench/train.py fine-tunes the packaged MiniLM once (1,500 SST-2 rows, batch 16, 1 epoch: 78 % on SST-2's test
set; 400 rows, 13 steps, left it at 54 %); serve, predict and attributions score the folder it saved;
augment trains its own pair (1,000 rows: 77 % and 80 %). Every bench that takes a thread count runs one:
on a 2-core machine that other jobs share, a 2-thread training slowed about 5x whenever a neighbour
ran (idle OpenMP threads spin; see bench/tune.py), a 1-thread one did not.
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
bench_common = importlib.util.module_from_spec(_spec)  # where the benches look for SST-2 (not put on sys.path)
_spec.loader.exec_module(bench_common)
SST2, SST2_SPLITS = bench_common.SST2, bench_common.SST2_SPLITS

CHANCE = 0.5  # SST-2 is two balanced classes
MODEL = "textclf[1x1]"  # bench/train.py's side: textclf's trainer, one process of one thread

needs_sst2 = pytest.mark.skipif(not all((SST2 / name).exists() for name in SST2_SPLITS.values()),
                                reason=f"SST-2 not found under {SST2} (set TEXTCLF_SST2)")


def accuracies(record: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Every accuracy a bench's JSON reports, by dotted path; deltas and targets are not accuracies."""
    found: dict[str, Any] = {}
    for key, value in record.items():
        where = f"{path}{key}"
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            value = {str(i): v for i, v in enumerate(value)}
        if isinstance(value, dict):
            found.update(accuracies(value, where + ".") if key != "targets" else {})
        elif "accuracy" in key and "delta" not in key:
            found[where] = value
    return found


def check(record: dict[str, Any], expected: list[str]) -> None:
    found = accuracies(record)
    missing = sorted(set(expected) - set(found))
    assert not missing, f"{record.get('bench')}: no {missing} in {sorted(found)}"
    implausible = {k: v for k, v in found.items()
                   if not (isinstance(v, (int, float)) and math.isfinite(v) and CHANCE < v <= 1)}
    assert not implausible, f"{record.get('bench')}: accuracies not above chance ({CHANCE}): {implausible}"


def bench(name: str, *args: str) -> dict[str, Any]:
    """`python bench/<name>.py ARGS`: its one JSON line; a failure shows the bench's own last words."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"bench/{name}.py exited {done.returncode}:\n{done.stderr[-3000:]}"
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert "skipped" not in record, record
    return record


@pytest.mark.parametrize("record", [
    {"bench": "serve", "textclf_torch": {"accuracy": 0.0}},  # every text scored wrong: names against ids
    {"bench": "serve", "textclf_torch": {"accuracy": None}},
    {"bench": "serve", "textclf_torch": {"accuracy": float("nan")}},
    {"bench": "serve", "textclf_torch": {"texts_per_s": 90.0}},  # the field went missing
    {"bench": "augment", "runs": [{"test_accuracy": 0.8}, {"test_accuracy": 0.5}]},
])
def test_the_check_fails_a_vacuous_accuracy(record):
    expected = ["runs.0.test_accuracy"] if record["bench"] == "augment" else ["textclf_torch.accuracy"]
    with pytest.raises(AssertionError):
        check(record, expected)


def test_the_check_passes_plausible_accuracies_and_ignores_deltas_and_targets():
    check({"bench": "serve", "textclf_torch": {"accuracy": 0.81}, "accuracy_delta_points": -0.4,
           "targets": {"max_accuracy_loss_points": 0.5}}, ["textclf_torch.accuracy"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Any]:
    """bench/train.py at its tiny size, textclf's side; its model folder is what the other benches score."""
    work = tmp_path_factory.mktemp("bench-train")
    return bench("train", "--train-rows", "1500", "--batch-size", "16", "--val-rows", "100", "--epochs", "1",
                 "--variants", "1x1", "--skip-hf", "--workdir", str(work))


@pytest.mark.slow
@needs_sst2
def test_train_bench(trained):
    check(trained, [f"{MODEL}.test_accuracy"])


@pytest.mark.slow
@needs_sst2
def test_serve_bench(trained):
    check(bench("serve", "--model", trained[MODEL]["model"], "--rows", "100", "--requests", "0",
                "--skip-default-pipeline", "--threads", "1"),
          ["textclf_torch.accuracy", "textclf_onnx_int8.accuracy", "pipeline.accuracy"])


@pytest.mark.slow
@needs_sst2
def test_predict_bench(trained):
    check(bench("predict", "--model", trained[MODEL]["model"], "--rows", "100"),
          ["textclf_predict.accuracy", "predict_flow.accuracy", "pipeline.accuracy"])


@pytest.mark.slow
@needs_sst2
def test_attributions_bench(trained, tmp_path):
    check(bench("attributions", "--model", trained[MODEL]["model"], "--eval-rows", "20",
                "--threads", "1", "--workdir", str(tmp_path)),
          ["accuracy_on_eval_texts"])


@pytest.mark.slow
@needs_sst2
def test_augment_bench(tmp_path):
    check(bench("augment", "--sizes", "1000", "--seeds", "0", "--epochs", "1", "--batch-size", "16", "--val-rows", "100",
                "--threads", "1", "--workdir", str(tmp_path)),
          ["runs.0.test_accuracy", "runs.0.val_accuracy", "runs.1.test_accuracy", "runs.1.val_accuracy"])


def test_joined_texts_are_consecutive_sentences_of_one_label(monkeypatch):
    """bench/train.py --join: the longer-text size, built the same for both sides."""
    import pandas as pd

    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # bench/train.py imports `common` as the benches do
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    frame = pd.DataFrame({"text": ["a", "b", "c", "d", "e", "f", "g"], "label": [1, 1, 0, 1, 0, 0, 1]})
    joined = bench_train.join_sentences(frame, 2)
    assert joined.to_dict("list") == {"text": ["a b", "c e", "d g", "f"], "label": [1, 0, 1, 0]}
    assert bench_train.join_sentences(frame, 1) is frame
