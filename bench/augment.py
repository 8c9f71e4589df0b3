"""Does EDA augmentation (data.augment) help in a low-data regime? SST-2, with and without.

    python bench/augment.py                                      # 1k and 5k rows, seeds 0 1, 2 epochs
    python bench/augment.py --sizes 1000 --seeds 0 --epochs 1    # a quick look
    python bench/augment.py --sizes 1000 --seeds 0 --epochs 1 --batch-size 16 --val-rows 100 --threads 1   # tests' size

For each training size and seed, the same SST-2 training rows (a seeded sample of train.tsv) are
preprocessed twice, once plain and once with `data.augment.enabled=true`, and the packaged
`minilm-l6` backbone is fine-tuned on each with the same seed and settings. Validation is the
first --val-rows rows of dev.tsv (model selection), the score is accuracy on SST-2's labelled test
set (the original GLUE dev set, 872 rows). Augmentation never touches validation or test.
Prints one JSON line: every run, and per size the mean accuracy without, with, and the gain.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from common import ROOT, Timer, emit, log, machine, offline, require_sst2, sst2, sst2_path

WORKDIR = ROOT / ".textclf" / "bench" / "augment"


def write_rows(frame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.rename(columns={"text": "sentence"}).to_csv(path, sep="\t", index=False)
    return str(path)


def one_run(overrides: str, key: str) -> dict[str, Any]:
    """Preprocess, train, score on test; a fresh folder each time (a checkpoint would resume)."""
    from textclf.config import compose
    from textclf.evaluation.scoring import score_split
    from textclf.model.predictor import Predictor
    from textclf.data.preprocess import preprocess
    from textclf.training.launcher import run_paths, train_model

    cfg = compose(overrides)
    paths = run_paths(cfg, "augment", key)
    shutil.rmtree(paths["root"], ignore_errors=True)
    manifest = preprocess(cfg, paths["data"])
    with Timer() as wall:
        record = train_model(cfg, manifest, paths)
    scored = score_split(Predictor(paths["model"], device="cpu"), manifest["shards"]["test"])
    accuracy = float(np.mean(scored.predicted == scored.truth))
    return {"train_rows": manifest["splits"]["train"]["rows"], "augmented_rows": manifest["augmented_rows"],
            "best_epoch": record["best_epoch"], "val_accuracy": round(record["best_val"], 4),
            "test_accuracy": round(accuracy, 4), "train_seconds": round(wall.seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="training rows")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="row sample and training seeds")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--val-rows", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=1, help="data.augment.copies")
    parser.add_argument("--augment", default="", help="more data.augment overrides, e.g. 'data.augment.swap=0'")
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="train.threads_per_proc; 0: every core")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args()
    offline()
    require_sst2("augment")
    val = write_rows(sst2("val", args.val_rows), args.workdir / "sst2" / "dev.tsv")
    full = sst2("train")
    runs = []
    for size in args.sizes:
        for seed in args.seeds:
            train = write_rows(full.sample(n=size, random_state=seed), args.workdir / "sst2" / f"train-{size}-{seed}.tsv")
            base = (f"data=sst2 data.train={train} data.val={val} data.test={sst2_path('test')} "
                    f"data.dask.scheduler_address=sync model.backbone={args.backbone} train.epochs={args.epochs} "
                    f"train.seed={seed} train.batch_size={args.batch_size} train.threads_per_proc={args.threads} "
                    f"train.checkpoint_every_steps=0 artifact_root={args.workdir}")
            for augment in (False, True):
                extra = f"data.augment.enabled=true data.augment.copies={args.copies} data.augment.seed={seed} " \
                        f"{args.augment}" if augment else ""
                result = one_run(f"{base} {extra}", f"{size}-{seed}-{'aug' if augment else 'plain'}")
                runs.append({"size": size, "seed": seed, "augment": augment, **result})
                log(runs[-1])
    summary = {}
    for size in args.sizes:
        plain = [r["test_accuracy"] for r in runs if r["size"] == size and not r["augment"]]
        aug = [r["test_accuracy"] for r in runs if r["size"] == size and r["augment"]]
        summary[str(size)] = {"plain": round(float(np.mean(plain)), 4), "augmented": round(float(np.mean(aug)), 4),
                              "gain": round(float(np.mean(aug) - np.mean(plain)), 4),
                              "gain_per_seed": [round(a - p, 4) for a, p in zip(aug, plain)]}
    emit({"bench": "augment", "backbone": args.backbone, "epochs": args.epochs, "batch_size": args.batch_size, "copies": args.copies,
          "seeds": args.seeds, "summary": summary, "runs": runs, "machine": machine()})


if __name__ == "__main__":
    main()
