"""The test split physically unreadable from preprocessing until TuneFlow's `final` step.

Put on PYTHONPATH (tests/test_selection.py does, for one TuneFlow run), this runs at the start of
every Python process. In a Metaflow step process (`flow.py ... step <name> --run-id <id> ...`) of
a run under $TEXTCLF_SEAL_ROOT it moves that run's `data/shards/test` folder aside before the step's
code runs, and only a `final` step moves it back: between preprocessing and the choice no reader,
pyarrow's native one included, finds a file to open (tests run as root, so permissions would not
stop a read). Each step process logs one JSON line to $TEXTCLF_SEAL_LOG: its step, and whether the
test shard was there after the move.
"""
import glob
import json
import os
import sys

ROOT, LOG = os.environ.get("TEXTCLF_SEAL_ROOT"), os.environ.get("TEXTCLF_SEAL_LOG")
BEFORE = {"start", "preprocess"}  # preprocessing writes the test shard; nothing reads it before that
UNSEALED_BY = "final"


def _move(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:  # a step process beside this one (a parallel trial) moved it first
        pass


def _guard() -> None:
    argv = sys.argv
    if not (ROOT and LOG and "step" in argv and "--run-id" in argv):
        return
    step, run_id = argv[argv.index("step") + 1], argv[argv.index("--run-id") + 1]
    state = "before preprocessing"
    if step not in BEFORE:
        found = glob.glob(os.path.join(ROOT, "**", "TuneFlow", run_id, "data", "shards"), recursive=True)
        if len(found) != 1:
            state = f"no single shards folder for run {run_id}: {found}"
        else:
            test, aside = os.path.join(found[0], "test"), os.path.join(found[0], "..", "sealed-test")
            _move(*((aside, test) if step == UNSEALED_BY else (test, aside)))
            state = "readable" if os.path.isdir(test) else "sealed"
    with open(LOG, "a") as f:
        f.write(json.dumps({"step": step, "pid": os.getpid(), "test": state}) + "\n")


_guard()
