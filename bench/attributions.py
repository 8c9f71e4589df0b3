"""Faithful attributions: integrated gradients (textclf's default) vs gradient x input, on a real model.

    python bench/attributions.py                      # reference: MiniLM fine-tuned on 3k SST-2 rows, 100 dev rows
    python bench/attributions.py --train-rows 500 --eval-rows 20   # a quick check
    python bench/attributions.py --model .textclf/bench/train/textclf/flow/model --eval-rows 20   # no training

Fine-tunes the packaged MiniLM briefly through the library (SST-2, or the embedded sample when the
SST-2 copy is absent), then explains the same held-out texts with both methods, for the predicted
label (or explains those of `--model`, a folder trained on SST-2, e.g. what bench/train.py saved), and
measures each with `textclf.evaluation.faithfulness`: deletion sign agreement (chance
is about 0.5), ERASER comprehensiveness (higher is better) and sufficiency (lower is better), and
the cost per text on the CPU. One JSON line, both methods side by side.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from common import ROOT, Timer, emit, gold_labels, log, machine, offline, sst2, sst2_path, stdout_to_stderr

WORKDIR = ROOT / ".textclf" / "bench" / "attributions"
SAMPLE = ROOT / "data" / "sample" / "reviews.csv"
EXAMPLE = "Not bad at all, actually quite good."  # the example: 96 % positive, "good" drawn as pushing away


def data_overrides(args: argparse.Namespace) -> tuple[str, list[str], str]:
    """Config overrides for the training rows, the held-out texts, and which data set it was."""
    if all(sst2_path(s).exists() for s in ("train", "val", "test")):
        folder = args.workdir / "sst2"
        folder.mkdir(parents=True, exist_ok=True)
        train = sst2("train", args.train_rows).rename(columns={"text": "sentence"})
        train.to_csv(folder / "train.tsv", sep="\t", index=False)
        held_out = sst2("val").tail(args.eval_rows)  # data.val below takes the head: no overlap
        sst2("val", 200).rename(columns={"text": "sentence"}).to_csv(folder / "dev.tsv", sep="\t", index=False)
        return (f"data=sst2 data.train={folder / 'train.tsv'} data.val={folder / 'dev.tsv'} "
                f"data.test={sst2_path('test')}", held_out["text"].tolist(), "sst2")
    log(f"SST-2 not found under {sst2_path('train').parent}: using {SAMPLE}")
    frame = pd.read_csv(SAMPLE)
    return f"data.source={SAMPLE}", frame["text"].tail(args.eval_rows).tolist(), "sample"


def fine_tune(args: argparse.Namespace, overrides: str) -> Path:
    from textclf.config import compose
    from textclf.data.preprocess import preprocess
    from textclf.training.launcher import run_paths, train_model

    cfg = compose(f"{overrides} model.backbone={args.backbone} train.epochs={args.epochs} "
                  f"train.batch_size={args.batch_size} train.nproc_per_node=1 train.threads_per_proc={args.threads} "
                  f"train.checkpoint_every_steps=0 data.dask.scheduler_address=sync artifact_root={args.workdir}")
    paths = run_paths(cfg, "bench", "attributions")
    shutil.rmtree(paths["root"], ignore_errors=True)  # a leftover checkpoint would resume, not retrain
    train_model(cfg, preprocess(cfg, str(args.workdir / "data")), paths)
    return Path(paths["model"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=3_000)
    parser.add_argument("--eval-rows", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--model", type=Path, default=None, help="a model folder trained on SST-2: no fine-tuning")
    args = parser.parse_args()
    offline()
    import numpy as np
    import torch

    from textclf.evaluation.faithfulness import faithfulness
    from textclf.model.attributions import METHODS, token_attributions
    from textclf.model.predictor import Predictor

    torch.set_num_threads(args.threads)
    overrides, texts, dataset = data_overrides(args)
    if args.model and dataset != "sst2":
        raise SystemExit(f"bench/attributions.py: --model needs SST-2's held-out texts; none under "
                         f"{sst2_path('val').parent}")
    with stdout_to_stderr(), Timer() as training:
        model_dir = args.model or fine_tune(args, overrides)
    predictor = Predictor(model_dir, device="cpu")
    sides = {}
    for method in METHODS:
        log(f"measuring {method} on {len(texts)} texts")
        sides[method] = faithfulness(predictor, texts, method)
        example = token_attributions(predictor, EXAMPLE, method=method)
        sides[method]["example"] = {"label": example["label"], "probability": round(example["probability"], 3),
                                    "words": {w: round(s, 4) for w, s in example["words"]}}
    ours, baseline = sides["integrated_gradients"], sides["gradient_x_input"]
    trained = {"model": str(args.model)} if args.model else {"backbone": args.backbone, "train_rows": args.train_rows,
                                                              "epochs": args.epochs, "train_seconds": round(training.seconds, 1)}
    accuracy = None
    if dataset == "sst2":  # names against names: the model's labels, and SST-2's 0/1 as those names
        gold = gold_labels(Path(model_dir), sst2("val").tail(args.eval_rows)["label"].tolist())
        accuracy = round(float(np.mean([p == g for p, g in zip(predictor.decide(predictor.predict_proba(texts)), gold)])), 4)
    emit({"bench": "attributions", "dataset": dataset, **trained, "eval_texts": len(texts), "eval_words": ours["words"],
          "accuracy_on_eval_texts": accuracy,
          **sides,
          "sign_agreement_gain_points": round(100 * (ours["sign_agreement"] - baseline["sign_agreement"]), 1),
          "cost_ratio": round(ours["ms_per_text"] / baseline["ms_per_text"], 1) if baseline["ms_per_text"] else None,
          "machine": {**machine(), "thread_budget": args.threads}})


if __name__ == "__main__":
    main()
