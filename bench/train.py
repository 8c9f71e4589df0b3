"""Training speed: textclf's trainer (torchrun, as TrainFlow runs it) vs a plain Hugging Face Trainer.

    python bench/train.py                                   # reference: 20k SST-2 rows, 1 epoch, batch 32
    python bench/train.py --train-rows 2000 --variants flow # a quick check
    python bench/train.py --train-rows 1500 --batch-size 16 --val-rows 100 --variants 1x1 --skip-hf   # tests' size
    python bench/train.py --train-rows 7000 --join 3                 # longer texts: 3 sentences each, 30-60 tokens
    python bench/train.py --variants "flow,flow:train.amp=off" --hf-bf16   # bf16 on both sides, and fp32

Both sides get the same rows (textclf's preprocessed train split, SST-2's test set for accuracy),
the same backbone (`minilm-l6`), hyperparameters (lr, decay, warmup, schedule, clipping, batch, label smoothing,
epochs, seed, max length) and thread budget. The baseline is Trainer's strong configuration:
dynamic padding (`DataCollatorWithPadding`) and `train_sampling_strategy="group_by_length"`.

textclf variants: `flow` is exactly what TrainFlow runs (default config); `PxT` runs P torchrun
processes with T threads each; append `:key=value ...` for other config overrides, e.g.
`1x2:train.amp=bf16`. samples/s counts the training loop only on both sides (textclf excludes its
per-epoch validation and checkpoint writes; Trainer runs with evaluation and saving off).
`first_step_seconds` is textclf's first micro-batch, where `train.compile=true` compiles;
`steady_samples_per_s` is samples/s without it. `--join K` makes every text K consecutive sentences
of one label (all splits, both sides): SST-2's ~13-token phrases become ~40-token texts.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from common import ROOT, Timer, emit, log, machine, offline, ratio, require_sst2, sst2, sst2_path, stdout_to_stderr

WORKDIR = ROOT / ".textclf" / "bench" / "train"


def write_rows(frame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.rename(columns={"text": "sentence"}).to_csv(path, sep="\t", index=False)
    return str(path)


def join_sentences(frame, k: int):
    """Each text `k` consecutive sentences of one label, in order: SST-2's phrases (about 13 tokens)
    become 30-60-token texts, so the comparison also covers longer inputs. The label is kept."""
    if k <= 1:
        return frame
    key = [frame["label"], frame.groupby("label").cumcount() // k]
    return frame.groupby(key, sort=False).agg(text=("text", " ".join), label=("label", "first")).reset_index(drop=True)


def split_file(split: str, rows: int | None, join: int, workdir: Path) -> str:
    """One SST-2 split as textclf reads it: `rows` texts (of `join` sentences each) in a TSV."""
    if join <= 1 and split == "test":
        return str(sst2_path("test"))
    frame = join_sentences(sst2(split, rows * join if rows else None), join)
    return write_rows(frame, workdir / "sst2" / f"{split}.tsv")


def base_overrides(args: argparse.Namespace, workdir: Path) -> str:
    train, val, test = (split_file(s, rows, args.join, workdir)
                        for s, rows in (("train", args.train_rows), ("val", args.val_rows), ("test", None)))
    return (f"data=sst2 data.train={train} data.val={val} data.test={test} "
            f"data.dask.scheduler_address=sync model.backbone={args.backbone} train.epochs={args.epochs} "
            f"train.batch_size={args.batch_size} artifact_root={workdir}")


def variant_overrides(variant: str, threads: int) -> str:
    """`flow` -> nothing; `2x1:train.amp=bf16` -> nproc, threads and the extra overrides."""
    layout, _, extra = variant.partition(":")
    if layout == "flow":
        return extra
    nproc, per = (int(x) for x in layout.split("x"))
    if nproc * per > threads:
        log(f"variant {variant} uses {nproc * per} threads, more than the budget of {threads}")
    return f"train.nproc_per_node={nproc} train.threads_per_proc={per} {extra}"


def run_textclf(overrides: str, variant: str, threads: int, manifest: dict[str, Any]) -> dict[str, Any]:
    from textclf.config import compose
    from textclf.evaluation.scoring import score_split
    from textclf.model.predictor import Predictor
    from textclf.training.launcher import run_paths, train_model

    cfg = compose(f"{overrides} {variant_overrides(variant, threads)}")
    key = variant.replace(":", "_").replace(" ", "_").replace("=", "-")
    paths = run_paths(cfg, "textclf", key)
    shutil.rmtree(paths["root"], ignore_errors=True)  # a leftover checkpoint would resume, not retrain
    with Timer() as wall:
        record = train_model(cfg, manifest, paths)
    scored = score_split(Predictor(paths["model"], device="cpu"), manifest["shards"]["test"])
    accuracy = float(np.mean(scored.predicted == scored.truth))
    first = record["first_step_seconds"]  # where train.compile compiles: steady state is the rest
    steady = (record["train_samples"] - cfg.train.batch_size) / max(record["train_seconds"] - first, 1e-9)
    return {"samples_per_s": round(record["train_samples_per_s"], 1), "steady_samples_per_s": round(steady, 1),
            "first_step_seconds": round(first, 1), "train_seconds": round(record["train_seconds"], 1),
            "wall_seconds": round(wall.seconds, 1), "test_accuracy": round(accuracy, 4),
            "processes": record["world_size"], "amp": record["amp"], "model": paths["model"]}


def mean_tokens(shard_uri: str) -> float:
    import pyarrow.parquet as pq

    return round(float(np.mean(pq.read_table(shard_uri, columns=["length"])["length"].to_numpy())), 1)


def split_rows(shard_uri: str) -> tuple[list[str], list[int]]:
    import pyarrow.parquet as pq

    table = pq.read_table(shard_uri, columns=["text", "label"])
    return table["text"].to_pylist(), table["label"].to_pylist()


def run_hf(args: argparse.Namespace, cfg, manifest: dict[str, Any], workdir: Path, bf16: bool = False) -> dict[str, Any]:
    """The Trainer a Hugging Face user would write, on the same rows and settings; with `bf16`, under
    Trainer's own bf16 autocast (`TrainingArguments(bf16=True)`), the lever textclf's `amp: auto` takes."""
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from textclf.model.backbones import resolve_backbone

    torch.set_num_threads(args.threads)
    source = resolve_backbone(cfg.model.backbone)
    tokenizer = AutoTokenizer.from_pretrained(source)
    id2label = {int(k): v for k, v in manifest["id2label"].items()}

    def dataset(shard: str) -> Dataset:
        texts, labels = split_rows(shard)
        enc = tokenizer(texts, truncation=True, max_length=cfg.model.max_length)
        return Dataset.from_dict({**enc, "labels": labels})

    train, test = dataset(manifest["shards"]["train"]), dataset(manifest["shards"]["test"])
    tc = cfg.train
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    targs = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=tc.batch_size, per_device_eval_batch_size=tc.eval_batch_size,
        num_train_epochs=tc.epochs, learning_rate=tc.lr, weight_decay=tc.weight_decay, warmup_steps=tc.warmup_ratio,
        lr_scheduler_type=tc.scheduler, max_grad_norm=tc.max_grad_norm, seed=tc.seed, label_smoothing_factor=tc.label_smoothing,
        train_sampling_strategy="group_by_length", eval_strategy="no", save_strategy="no", logging_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, bf16=bf16)
    trainer = Trainer(model=model, args=targs, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
    with Timer() as wall:
        out = trainer.train()
    # Trainer v5 length-groups predict() too under group_by_length, which scrambles row order.
    trainer.args.train_sampling_strategy = "sequential"
    pred = trainer.predict(test)
    accuracy = float(np.mean(pred.predictions.argmax(-1) == np.asarray(test["labels"])))
    return {"samples_per_s": round(out.metrics["train_samples_per_second"], 1),
            "train_seconds": round(out.metrics["train_runtime"], 1), "wall_seconds": round(wall.seconds, 1),
            "test_accuracy": round(accuracy, 4), "optimizer": str(targs.optim), "threads": args.threads, "bf16": bf16}


def same_precision_ratios(ours: dict[str, Any], sides: dict[str, Any]) -> dict[str, float | None]:
    """Each textclf variant against the Trainer that ran at its precision (fp32 or bf16 autocast), where
    one did: the trainer's own share of a speed-up, apart from what bf16 units give either side."""
    trainers = {"off": sides.get("hf_trainer"), "bfloat16": sides.get("hf_trainer[bf16]")}
    return {name: ratio(side["samples_per_s"], trainers[side["amp"]]["samples_per_s"])
            for name, side in ours.items() if trainers.get(side["amp"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--val-rows", type=int, default=1_000, help="textclf validates every epoch (not timed)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--join", type=int, default=1, help="sentences per text (same label; every split): longer inputs")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="thread budget of each side")
    parser.add_argument("--variants", default="flow,2x1", help="comma-separated textclf variants (see above)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--hf-bf16", action="store_true",
                        help="also run Trainer with bf16=True (`hf_trainer[bf16]`); the ratio stays against its default")
    args = parser.parse_args()
    offline()
    require_sst2("train")
    from textclf.config import compose
    from textclf.data.preprocess import preprocess

    overrides = base_overrides(args, args.workdir)
    cfg = compose(overrides)
    sides: dict[str, Any] = {}
    with stdout_to_stderr():
        log("preprocessing")
        manifest = preprocess(cfg, str(args.workdir / "data"))
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            log(f"textclf variant {variant}")
            sides[f"textclf[{variant}]"] = run_textclf(overrides, variant, args.threads, manifest)
        if not args.skip_hf:
            log("Hugging Face Trainer")
            sides["hf_trainer"] = run_hf(args, cfg, manifest, args.workdir)
            if args.hf_bf16:
                log("Hugging Face Trainer, bf16")
                sides["hf_trainer[bf16]"] = run_hf(args, cfg, manifest, args.workdir, bf16=True)
    hf = sides.get("hf_trainer")
    ours = {k: v for k, v in sides.items() if k.startswith("textclf")}
    best = max(ours, key=lambda k: ours[k]["samples_per_s"]) if ours else None
    flow = "textclf[flow]" if "textclf[flow]" in ours else best
    emit({
        "bench": "train", "train_rows": len(split_rows(manifest["shards"]["train"])[0]), "join": args.join,
        "mean_tokens": mean_tokens(manifest["shards"]["train"]), "epochs": args.epochs,
        "batch_size": args.batch_size, "backbone": args.backbone, **sides,
        "ratio": ratio(ours[flow]["samples_per_s"], hf["samples_per_s"]) if hf and flow else None,
        "best_variant": best,
        "ratio_best": ratio(ours[best]["samples_per_s"], hf["samples_per_s"]) if hf and best else None,
        "accuracy_delta_points": round(100 * (ours[flow]["test_accuracy"] - hf["test_accuracy"]), 2) if hf and flow else None,
        "ratio_same_precision": same_precision_ratios(ours, sides),
        "targets": {"ratio": 1.5, "accuracy_delta_points": 0.0},
        "machine": {**machine(), "thread_budget": args.threads},
    })


if __name__ == "__main__":
    main()
