"""Multi-label recipes on the embedded tags sample, against the predict-all-tags baseline.

    python bench/multilabel.py                                # every recipe; test for the chosen one
    python bench/multilabel.py --recipes multilabel,old_default --resume   # the README's table

The chosen recipe gets `--seeds` seeds (0, 1, ...); the `--screened` ablations get seed 0 only.

Each recipe is a set of config overrides trained in-process (one rank, as the tests do) on one
preprocessing of `data=sample_tags` with the packaged MiniLM. Recipes are compared on validation
only, each at the global threshold training fitted on validation (so validation numbers are a little
optimistic, alike for every recipe). Per-label thresholds are measured against a global one fairly:
both fitted on one half of validation and scored on the other, then the halves swapped. The test
split is read once, for `--chosen` only.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from common import ROOT, Timer, emit, log, machine, offline, stdout_to_stderr

WORKDIR = ROOT / ".textclf" / "bench" / "multilabel"
BASE = "data=sample_tags data.dask.scheduler_address=sync train.threads_per_proc=2 train.checkpoint_every_steps=0"
RECIPES = {  # the old default, the shipped recipe (config/train/multilabel.yaml), and one knob changed on each
    "multilabel": "train=multilabel",
    "old_default": "train=default",
    "old_default+head_lr": "train=default train.head_lr=2e-3",
    "multilabel+pos_weight": "train=multilabel train.class_weights=true",
}
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"micro_f1": round(float(f1_score(truth, pred, average="micro", zero_division=0)), 4),
            "subset_accuracy": round(float(np.mean((truth == pred).all(1))), 4),
            "precision": round(float(precision_score(truth, pred, average="micro", zero_division=0)), 4),
            "recall": round(float(recall_score(truth, pred, average="micro", zero_division=0)), 4)}


def _f1(truth: np.ndarray, pred: np.ndarray) -> float:
    return f1_score(truth, pred, average="micro", zero_division=0)


def fit_thresholds(truth: np.ndarray, probs: np.ndarray, per_label: bool) -> np.ndarray:
    """One threshold for every label (micro-F1's best), or each label's own, tuned one label at a
    time from the global one (coordinate ascent: micro-F1 couples the labels)."""
    best = GRID[int(np.argmax([_f1(truth, probs >= t) for t in GRID]))]
    thresholds = np.full(probs.shape[1], best)
    if per_label:
        for j in range(probs.shape[1]):
            def trial(t: float) -> float:
                thresholds[j] = t
                return _f1(truth, probs >= thresholds)
            thresholds[j] = GRID[int(np.argmax([trial(t) for t in GRID]))]
    return thresholds


def cross_fitted(truth: np.ndarray, probs: np.ndarray, per_label: bool, seed: int = 0) -> dict[str, float]:
    """Thresholds fitted on one half of the rows and applied to the other, both ways: an honest
    comparison of global and per-label thresholds on a split too small to hold out a third part."""
    order = np.random.default_rng(seed).permutation(len(truth))
    halves = [order[: len(order) // 2], order[len(order) // 2:]]
    pred = np.zeros_like(truth)
    for fit_on, apply_to in (halves, halves[::-1]):
        pred[apply_to] = probs[apply_to] >= fit_thresholds(truth[fit_on], probs[fit_on], per_label)
    return scores(truth, pred)


def train(name: str, seed: int, manifest: dict[str, Any], workdir: Path, resume: bool) -> dict[str, Any]:
    """One recipe and seed: its model, and its scored val and test splits (test is scored only if asked)."""
    from textclf.config import compose, to_dict
    from textclf.model.predictor import Predictor
    from textclf.training.loop import fit

    cfg = compose(f"{BASE} {RECIPES[name]} train.seed={seed}")
    run = workdir / "runs" / f"{name}-{seed}"
    if not resume:
        shutil.rmtree(run, ignore_errors=True)  # a leftover checkpoint would resume, not retrain
    spec = {"config": to_dict(cfg), "manifest": manifest, "output": str(run / "model"),
            "checkpoint_dir": str(run / "ckpt"), "log_dir": str(run / "logs")}
    with Timer() as wall:
        record = fit(spec)
    return {"predictor": Predictor(run / "model", device="cpu"), "record": record, "seconds": round(wall.seconds, 1)}


def evaluate(predictor, shard: str) -> tuple[np.ndarray, np.ndarray]:
    from textclf.evaluation.scoring import score_split

    scored = score_split(predictor, shard)
    return np.asarray(scored.truth), scored.probs


def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {sorted(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per recipe (0, 1, ...)")
    parser.add_argument("--screened", default="old_default,old_default+head_lr,multilabel+pos_weight",
                        help="recipes trained with seed 0 only (ablations that did not win)")
    parser.add_argument("--chosen", default="multilabel", help="the recipe scored on test ('' for none)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--resume", action="store_true", help="continue runs cut short from their checkpoints "
                        "(resumed runs end with the same weights as uninterrupted ones)")
    args = parser.parse_args()
    offline()
    from textclf.config import compose
    from textclf.data.preprocess import preprocess

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    screened = {r.strip() for r in args.screened.split(",")}
    out: dict[str, Any] = {"bench": "multilabel", "machine": machine(), "seeds": list(range(args.seeds)), "screened_seed_0_only": sorted(screened & set(recipes)), "recipes": {}}
    with stdout_to_stderr():
        manifest = preprocess(compose(BASE), str(args.workdir / "data"))
        val_truth = evaluate_truth = None
        for name in recipes:
            runs = []
            for seed in range(1 if name in screened else args.seeds):
                log(f"recipe {name}, seed {seed}")
                trained = train(name, seed, manifest, args.workdir, args.resume)
                val_truth, probs = evaluate(trained["predictor"], manifest["shards"]["val"])
                threshold = trained["record"]["threshold"]
                row = {**scores(val_truth, probs >= threshold), "threshold": threshold,
                       "best_epoch": trained["record"]["best_epoch"], "seconds": trained["seconds"]}
                row.update({f"xfit_global_{k}": v for k, v in cross_fitted(val_truth, probs, False).items()})
                row.update({f"xfit_per_label_{k}": v for k, v in cross_fitted(val_truth, probs, True).items()})
                if name == args.chosen:
                    evaluate_truth, test_probs = evaluate(trained["predictor"], manifest["shards"]["test"])
                    row.update({f"test_{k}": v for k, v in scores(evaluate_truth, test_probs >= threshold).items()})
                log(f"{name} seed {seed}: {row}")  # kept in the log should a long run be cut short
                runs.append(row)
            out["recipes"][name] = {"val_mean": mean_of(runs), "runs": runs}
        out["baseline_all_tags"] = {"val": scores(val_truth, np.ones_like(val_truth))}
        if evaluate_truth is not None:
            out["baseline_all_tags"]["test"] = scores(evaluate_truth, np.ones_like(evaluate_truth))
        out["rows"] = {split: manifest["splits"][split]["rows"] for split in ("train", "val", "test")}
    emit(out)


if __name__ == "__main__":
    main()
