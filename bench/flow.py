"""Where TrainFlow's wall time goes: orchestration, Dask, notebooks and the rest vs training itself.

    python bench/flow.py                                   # the default flow: sample data, MiniLM
    python bench/flow.py --overrides 'model=tiny train.epochs=1'
    python bench/flow.py --notebooks                       # and the reports one after another vs side by side

Runs `python flows/train_flow.py run` in a fresh, isolated Metaflow datastore and artifact root,
then reads the run back through the Metaflow client: each step's created_at / finished_at, and
the training loop's own seconds (`training.json` train_seconds, carried as the `training`
artifact). Overhead is everything that is not the training loop: wall minus train_seconds.
With `--notebooks`, the run's report notebooks are then executed again on the same inputs, one
after another and side by side (`textclf.evaluation.notebooks.run_reports`'s `workers`), so the
two ways are compared in one run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, Timer, emit, log, machine, offline, ratio

# Which step's time is whose overhead.
KINDS = {"preprocess": "dask", "evaluate": "notebooks", "register": "mlflow"}


def run_flow(overrides: str, workdir: Path) -> tuple[str, float]:
    """Run TrainFlow in an isolated datastore; return its run id and the wall seconds."""
    env = {**os.environ,
           "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(workdir / "metaflow"),
           "TEXTCLF_ARTIFACT_ROOT": str(workdir / "artifacts"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
           "TEXTCLF_MLFLOW_ARTIFACTS": str(workdir / "mlruns"),
           "METAFLOW_USER": os.environ.get("METAFLOW_USER", "bench")}
    id_file = workdir / "run-id"
    cmd = [sys.executable, str(ROOT / "flows" / "train_flow.py"), "--no-pylint"]
    cmd += ["--config-value", "config", overrides] if overrides else []
    cmd += ["run", "--run-id-file", str(id_file)]
    log("running:", " ".join(cmd))
    with Timer() as wall:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"TrainFlow failed with exit status {done.returncode} (its log is above)")
    os.environ.update(env)  # the client reads this run back, and --notebooks' kernels find its stores
    return id_file.read_text().strip(), wall.seconds


def breakdown(run_id: str, wall: float) -> dict[str, Any]:
    from metaflow import Run, namespace

    namespace(None)
    run = Run(f"TrainFlow/{run_id}")
    steps = {step.id: (step.finished_at - step.created_at).total_seconds() for step in run}
    training = run["join_train"].task.data.training
    train_loop = float(training["train_seconds"])
    in_steps = sum(steps.values())
    overhead = {"metaflow": wall - in_steps,  # process launches, scheduling, datastore between tasks
                "train_step_other": steps.get("train", 0.0) - train_loop}  # torchrun, model load, validation, save
    for step, seconds in steps.items():
        if step != "train":
            kind = KINDS.get(step, "other_steps")
            overhead[kind] = overhead.get(kind, 0.0) + seconds
    return {"run": run.pathspec, "wall_seconds": round(wall, 1), "training_seconds": round(train_loop, 1),
            "overhead_seconds": round(wall - train_loop, 1),
            "overhead": {k: round(v, 1) for k, v in overhead.items()},
            "steps": {k: round(v, 1) for k, v in steps.items()},
            "train_samples_per_s": round(float(training["train_samples_per_s"]), 1)}


def notebook_arms(run_id: str, workdir: Path) -> dict[str, Any]:
    """The run's evaluate step again, its reports one after another, then side by side."""
    from metaflow import Run

    from textclf.evaluation.notebooks import REPORTS, run_reports
    from textclf.storage import join

    data = Run(f"TrainFlow/{run_id}")["end"].task.data
    inputs = {"run_id": f"TrainFlow/{run_id}", "model_uri": data.model_uri, "data_uri": data.paths["data"],
              "log_uri": join(data.paths["logs"], "metrics.jsonl")}
    seconds = {}
    for arm, workers in (("one_after_another", 1), ("side_by_side", len(REPORTS))):
        out = workdir / f"reports-{arm}"
        with Timer() as wall:
            run_reports({**inputs, "output_dir": str(out)}, out, workers=workers)
        seconds[arm] = round(wall.seconds, 1)
    return {"notebooks_seconds": seconds, "speedup": ratio(seconds["one_after_another"], seconds["side_by_side"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", default="", help="Hydra overrides for the flow's config (default: none)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--notebooks", action="store_true", help="then time the reports one after another vs side by side")
    args = parser.parse_args()
    offline()
    with tempfile.TemporaryDirectory(prefix="bench-flow-", dir=args.workdir) as tmp:
        run_id, wall = run_flow(args.overrides, Path(tmp))
        result = breakdown(run_id, wall)
        if args.notebooks:
            result["notebooks"] = notebook_arms(run_id, Path(tmp))
    emit({"bench": "flow", "overrides": args.overrides, **result, "targets": {"overhead_seconds": 60},
          "machine": machine()})


if __name__ == "__main__":
    main()
