"""TuneFlow's trials per hour on this machine: trials side by side with the thread setting they had
before (every trial takes every core) vs now (the cores split between them), and one after another.

    python bench/tune.py                                      # embedded sample, default config: 1 round x 2 trials, before and after
    python bench/tune.py --arms before,after,sequential       # and the same trials one after another
    python bench/tune.py --repeats 2                          # interleaved: before, after, before, after
    python bench/tune.py --overrides 'model=tiny train.epochs=1'   # a quick look

Each arm runs `--rounds` rounds of `tune.trials_per_round` trials the way TuneFlow's trial step
does (`textclf.tuning.study.run_trial`: ask Optuna, train with torchrun, tell) on shards
preprocessed once, in a fresh study per arm with the same seed, so every arm trains the same
parameters in the same slots. As in TuneFlow, each branch runs its rounds' trials in turn and the
branches run side by side. The arms:

- `before`: trials side by side, each with cores // processes threads (what TuneFlow ran);
- `after`: trials side by side, each with cores // (processes x trials side by side) (what a local
  TuneFlow runs now, `textclf.training.launcher.threads_per_proc`);
- `sequential`: one trial at a time with every core (Metaflow's `run --max-workers 1`).

Per arm: trials per hour (trials over the arm's wall time), each trial's training-loop samples/s,
the CPU seconds its trainings used (children's rusage: spinning OpenMP threads show up here) and
the load average before and after. Metaflow's per-step overhead is the same in every arm and is
left out. Arms interleave with `--repeats`, so a busy neighbour slows every arm alike; the default
run took about 15 minutes on the 2 shared cores of this project's machine (`before` alone 11).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
from pathlib import Path
from typing import Any

from common import ROOT, Timer, emit, log, machine, offline, ratio, stdout_to_stderr

WORKDIR = ROOT / ".textclf" / "bench" / "tune"
ARMS = ("before", "after", "sequential")
DEFAULT_ARMS = "before,after"


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_trials(cfg_dict: dict[str, Any], ref: dict[str, str], manifest: dict[str, Any], key: str,
               per_round: int, rounds: int, arm: str) -> list[dict[str, Any]]:
    """TuneFlow's branches: branch b runs slots b, b + per_round, ... in turn, the branches side by
    side (threads here; each trial trains in its own torchrun processes, as in a Metaflow task), or
    every slot in turn for `sequential`."""
    from textclf.tuning.study import run_trial

    concurrent = per_round if arm == "after" else 1
    results: dict[int, dict[str, Any]] = {}

    def branch(slots: range) -> None:
        for slot in slots:
            results[slot] = run_trial(cfg_dict, ref, manifest, key, slot, None, concurrent=concurrent)

    if arm == "sequential":
        branch(range(rounds * per_round))
    else:
        threads = [threading.Thread(target=branch, args=(range(b, rounds * per_round, per_round),))
                   for b in range(per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    missing = sorted(set(range(rounds * per_round)) - set(results))
    if missing:
        raise SystemExit(f"bench/tune.py: arm {arm}: the trials in slots {missing} failed or did not run (see above)")
    return [results[slot] for slot in sorted(results)]


def run_arm(arm: str, key: str, overrides: str, manifest: dict[str, Any], rounds: int) -> dict[str, Any]:
    from textclf.config import compose, to_dict
    from textclf.training.launcher import run_paths
    from textclf.tuning.space import search_space
    from textclf.tuning.study import load_study, study_ref

    cfg = compose(overrides)
    root = run_paths(cfg, "TuneFlow", key)["root"]  # where run_trial puts the arm's trials
    shutil.rmtree(root, ignore_errors=True)  # a leftover checkpoint would resume, not retrain
    ref = study_ref(cfg, root, f"bench-{key}")
    load_study(ref, cfg.tune, search_space(cfg))  # created before the trials race to create it
    load_before, cpu_before = os.getloadavg()[0], children_cpu_seconds()
    with Timer() as wall:
        results = run_trials(to_dict(cfg), ref, manifest, key, cfg.tune.trials_per_round, rounds, arm)
    records = [json.loads(Path(s["model"], "training.json").read_text()) for r in results for s in r["seeds"]]
    shutil.rmtree(root)  # checkpoints: 130 MB a trial with MiniLM
    return {"trials": len(results), "wall_seconds": round(wall.seconds, 1),
            "trials_per_hour": round(3600 * len(results) / wall.seconds, 1),
            "samples_per_s_per_trial": [round(r["train_samples_per_s"], 1) for r in records],
            "threads_per_trial": [r["threads"] for r in records],
            "cpu_seconds_per_trial": round((children_cpu_seconds() - cpu_before) / len(results), 1),
            "best_val": [round(r["value"], 4) for r in results],
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """An arm over its repeats: trials per hour over all its trials and wall time, and every run."""
    trials, wall = sum(r["trials"] for r in runs), sum(r["wall_seconds"] for r in runs)
    samples = [s for r in runs for s in r["samples_per_s_per_trial"]]
    return {"trials_per_hour": round(3600 * trials / wall, 1),
            "samples_per_s_per_trial": round(sum(samples) / len(samples), 1), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated, run in this order each repeat: {ARMS}")
    parser.add_argument("--rounds", type=int, default=1, help="trials per branch (tune.trials_per_round branches)")
    parser.add_argument("--repeats", type=int, default=1, help="run every arm this many times, interleaved")
    parser.add_argument("--overrides", default="", help="Hydra overrides (default: none, the flows' default config)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"bench/tune.py: unknown arms {unknown}; choose from {ARMS}")
    offline()
    from textclf.config import compose
    from textclf.data.preprocess import preprocess

    overrides = f"data.dask.scheduler_address=sync artifact_root={args.workdir} {args.overrides}"
    cfg = compose(overrides)
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    with stdout_to_stderr():
        log("preprocessing")
        manifest = preprocess(cfg, str(args.workdir / "data"))
        for repeat in range(args.repeats):
            for arm in arms:
                log(f"arm {arm}, repeat {repeat}")
                runs[arm].append(run_arm(arm, f"{arm}-{repeat}", overrides, manifest, args.rounds))
                log(arm, runs[arm][-1])
    sides = {arm: summary(r) for arm, r in runs.items()}
    per_hour = {arm: s["trials_per_hour"] for arm, s in sides.items()}
    emit({"bench": "tune", "data": cfg.data.source, "backbone": cfg.model.backbone, "epochs": cfg.train.epochs,
          "trials_per_round": cfg.tune.trials_per_round, "rounds": args.rounds, "repeats": args.repeats,
          "overrides": args.overrides, **sides,
          "ratio": ratio(per_hour["after"], per_hour["before"]) if {"after", "before"} <= set(per_hour) else None,
          "ratio_vs_sequential": ratio(per_hour["after"], per_hour["sequential"])
          if {"after", "sequential"} <= set(per_hour) else None,
          "machine": machine()})


if __name__ == "__main__":
    main()
