"""The training loop, one rank's view: set up, then epochs of training steps, each epoch ended by
validation, model selection and a checkpoint, then finish by saving the best weights.

`fit(spec)` reads like that sentence; each piece is a function of a `Trainer` (everything the
rank trains with) whose `progress` is the part a checkpoint stores besides tensors.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from textclf.config import TextclfConfig, from_dict
from textclf.evaluation.calibration import calibrate
from textclf.evaluation.metrics import resolve_metric, validation_metrics
from textclf.model.folder import save_folder
from textclf.model.network import build_model
from textclf.model.padding import pad_batch
from textclf.storage import upload_dir
from textclf.training.checkpoints import Checkpoints
from textclf.training.distributed import (Dist, broadcast_weights, default_threads, init_distributed, seed_everything,
                                          weights_digest)
from textclf.training.inputs import Split, labels_tensor, load_split
from textclf.training.launcher import model_workdir
from textclf.training.objective import EmbeddingAttack, make_loss
from textclf.training.optim import amp_dtype, make_optimizer, make_scheduler
from textclf.training.progress import progress
from textclf.training.sampler import BucketBatchSampler
from textclf.training.tracking import RunLog
from textclf.training.validation import predict_logits, split_probabilities


@dataclass
class Progress:
    """Where the run is and how it has done: resumed from a checkpoint as it was saved."""
    epoch: int = 0
    micro: int = 0  # micro-batches done in this epoch
    step: int = 0  # optimizer steps done
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    samples: int = 0
    train_seconds: float = 0.0
    epoch_loss: float = 0.0


@dataclass
class Trainer:
    """Everything one rank trains with, built once by `setup`."""
    spec: dict[str, Any]
    cfg: TextclfConfig
    d: Dist
    train: Split
    val: Split
    tokenizer: Any
    multi_label: bool
    model: nn.Module  # the classifier itself
    ddp: nn.Module  # what forward and backward go through: DDP's wrapper, or the model on one rank
    forward: nn.Module  # what the training step calls: `ddp`, compiled with train.compile
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    attack: EmbeddingAttack | None
    sampler: BucketBatchSampler
    dtype: torch.dtype | None
    ckpts: Checkpoints
    log: RunLog
    progress: Progress = field(default_factory=Progress)
    first_step_seconds: float = 0.0  # this process's first micro-batch: where train.compile compiles
    # The kept weights' val logits from the epoch that chose them, for `finish` (None if resumed past it).
    best_val_logits: np.ndarray | None = None

    @property
    def kept(self) -> nn.Module:
        """What is evaluated, selected and saved: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    @property
    def n_labels(self) -> int:
        return len(self.spec["manifest"]["id2label"])

    @property
    def metric_name(self) -> str:
        return resolve_metric(self.cfg.train.metric, self.multi_label)


# --------------------------------------------------------------------------- set-up

def setup(spec: dict[str, Any]) -> Trainer:
    """Process group, data, model, optimizer and schedule; then the newest checkpoint, if any."""
    from transformers import AutoTokenizer

    cfg: TextclfConfig = from_dict(spec["config"])
    tc, manifest = cfg.train, spec["manifest"]
    multi_label = bool(manifest["multi_label"])
    id2label = {int(k): v for k, v in manifest["id2label"].items()}
    d = init_distributed(tc.threads_per_proc or default_threads())
    seed_everything(tc.seed)
    train, val = load_split(manifest["shards"]["train"]), load_split(manifest["shards"]["val"])
    if len(train) == 0:
        raise ValueError("the train split is empty")
    per_rank = tc.batch_size // (d.world_size * tc.grad_accum)
    if per_rank < 1:
        raise ValueError(f"train.batch_size={tc.batch_size} is smaller than ranks x grad_accum "
                         f"({d.world_size} x {tc.grad_accum})")
    model = build_model(cfg.model.backbone, id2label, pooling=cfg.model.pooling, head_hidden=cfg.model.head_hidden,
                        head_dropout=cfg.model.head_dropout, head_layernorm=cfg.model.head_layernorm,
                        multi_label=multi_label).to(d.device)
    model.get_input_embeddings().requires_grad_(not tc.freeze_word_embeddings)
    sampler = BucketBatchSampler(train.lengths, per_rank, d.world_size, d.rank, tc.seed, tc.bucket_batches)
    optimizer = make_optimizer(model, tc)
    # An average of the recent weights, not the last noisy step, is what gets evaluated and kept. It starts
    # one step from the pretrained backbone, and that start's share fades as decay**steps: a gentle pull back
    # toward general features for short fine-tunes.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema)) if tc.ema else None
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None) \
        if d.world_size > 1 else model
    trainer = Trainer(
        spec=spec, cfg=cfg, d=d, train=train, val=val, tokenizer=AutoTokenizer.from_pretrained(manifest["tokenizer"]),
        multi_label=multi_label, model=model, ddp=ddp, forward=compiled(ddp) if tc.compile else ddp, ema=ema,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, tc, math.ceil(len(sampler) / tc.grad_accum) * tc.epochs),
        loss_fn=make_loss(tc, multi_label, train.labels, len(id2label)),
        attack=EmbeddingAttack(ddp, tc.fgm) if tc.fgm else None, sampler=sampler,
        dtype=amp_dtype(tc, d.device, hint=d.main),
        ckpts=Checkpoints(Path(spec["checkpoint_dir"]), d, spec.get("checkpoint_mirror")),
        log=RunLog(Path(spec["log_dir"]) / "metrics.jsonl", d.main, cfg.registry.tracking_uri, spec.get("mlflow_run_id"),
                   spec.get("log_mirror")))
    resume(trainer)
    return trainer


def compiled(module: nn.Module) -> nn.Module:
    """Forward and backward compiled by Inductor, on the module's own parameters (state dicts keep their
    keys); dynamic shapes at once, as every batch pads to its own length. Validation runs the plain
    module: its no-grad graphs would cost more compiling than its few passes save."""
    return torch.compile(module, dynamic=True)


def snapshot(t: Trainer) -> dict[str, Any]:
    return {**asdict(t.progress), "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
            **({"ema": t.ema.state_dict()} if t.ema is not None else {})}


def save(t: Trainer) -> None:
    """A checkpoint, and the training log beside it on durable storage."""
    t.ckpts.save(t.progress.step, snapshot(t), t.ddp)
    t.log.sync()


def resume(t: Trainer) -> None:
    """Continue from the newest complete checkpoint: weights, optimizer, schedule, EMA, counters, RNG."""
    folder = t.ckpts.latest()
    if folder is None:
        return
    loaded = t.ckpts.load(folder)
    t.model.load_state_dict(loaded.pop("model"))
    t.optimizer.load_state_dict(loaded.pop("optimizer"))
    t.scheduler.load_state_dict(loaded.pop("scheduler"))
    if t.ema is not None:
        t.ema.load_state_dict(loaded.pop("ema"))
    t.progress = Progress(**loaded)
    if t.d.main:
        print(f"resumed from {t.ckpts.fetched_from or folder} (epoch {t.progress.epoch}, step {t.progress.step})",
              flush=True)


# --------------------------------------------------------------------------- one step

def _loss(t: Trainer, batch: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    with torch.autocast(t.d.device.type, dtype=t.dtype, enabled=t.dtype is not None):
        logits = t.forward(**batch).logits
    return t.loss_fn(logits, y) / t.cfg.train.grad_accum


def train_step(t: Trainer, idx: np.ndarray) -> float:
    """One micro-batch: forward and backward (a second time at FGM's perturbed embeddings when on),
    without DDP's gradient sync until the accumulation boundary; at the boundary clip, step the
    optimizer and the schedule, and update the moving average. Returns the micro-batch's loss.
    With `train.fgm_every` = k the adversarial pass runs on every k-th micro-batch of the epoch."""
    tc, p = t.cfg.train, t.progress
    batch = {k: v.to(t.d.device) for k, v in pad_batch([t.train.input_ids[i] for i in idx], t.pad_id).items()}
    y = labels_tensor([t.train.labels[i] for i in idx], t.multi_label, t.n_labels).to(t.d.device)
    boundary = (p.micro + 1) % tc.grad_accum == 0 or p.micro + 1 == len(t.sampler)
    with t.ddp.no_sync() if (t.d.world_size > 1 and not boundary) else nullcontext():
        loss = _loss(t, batch, y)
        loss.backward()
        if t.attack is not None and p.micro % tc.fgm_every == 0:
            with t.attack.perturbed():
                _loss(t, batch, y).backward()
    value = loss.item() * tc.grad_accum
    p.epoch_loss += value
    p.micro += 1
    p.samples += len(idx) * t.d.world_size
    if boundary:
        if tc.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(t.ddp.parameters(), tc.max_grad_norm)
        t.optimizer.step()
        t.scheduler.step()
        t.optimizer.zero_grad(set_to_none=True)
        if t.ema is not None:
            t.ema.update_parameters(t.model)
        p.step += 1
    return value


# --------------------------------------------------------------------------- one epoch

def run_epoch(t: Trainer, stop_after_steps: int | None = None) -> bool:
    """Train the rest of the current epoch; True when stopped early by `stop_after_steps` (a
    checkpoint was just written, as before a preemption)."""
    tc, p = t.cfg.train, t.progress
    t.sampler.epoch, t.sampler.skip = p.epoch, p.micro
    bar = progress(len(t.sampler), f"epoch {p.epoch + 1}/{tc.epochs}", disable=not t.d.main, initial=p.micro)
    started, losses = time.perf_counter(), []
    try:
        for idx in t.sampler:
            steps_before, began = p.step, time.perf_counter()
            losses.append(train_step(t, idx))
            t.first_step_seconds = t.first_step_seconds or time.perf_counter() - began
            bar.update(1)
            if p.step == steps_before:
                continue
            if p.step % 10 == 0:
                t.log.write({"kind": "step", "step": p.step, "epoch": p.epoch + p.micro / len(t.sampler),
                             "loss": float(np.mean(losses[-10 * tc.grad_accum:])), "lr": t.scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{t.scheduler.get_last_lr()[0]:.2e}")
            if tc.checkpoint_every_steps and p.step % tc.checkpoint_every_steps == 0:
                p.train_seconds += time.perf_counter() - started
                started = time.perf_counter()
                save(t)
                if stop_after_steps is not None and p.step >= stop_after_steps:
                    return True
    finally:
        bar.close()
    p.train_seconds += time.perf_counter() - started
    return False


def end_epoch(t: Trainer) -> bool:
    """Validate, record, keep the weights if they are the best so far, checkpoint; True when early
    stopping says to finish."""
    tc, p = t.cfg.train, t.progress
    logits = predict_logits(t.kept, t.val, t.d, tc.eval_batch_size, t.pad_id, t.dtype)
    metrics = validation_metrics(t.val.labels, split_probabilities(logits, t.multi_label), t.multi_label) if len(t.val) else {}
    threshold = metrics.pop("threshold", None)  # multi-label: the one its scores were taken at
    score = metrics.get(t.metric_name, -p.epoch_loss / max(p.micro, 1))
    record = {"kind": "epoch", "epoch": p.epoch + 1, "step": p.step, "train_loss": p.epoch_loss / max(p.micro, 1),
              "samples_per_s": p.samples / max(p.train_seconds, 1e-9), **{f"val_{k}": v for k, v in metrics.items()},
              **({"threshold": threshold} if threshold is not None else {})}
    p.history.append(record)
    t.log.write(record)
    if t.d.main:
        print(json.dumps(record), flush=True)
    if score > p.best:
        p.best, p.best_epoch, p.bad_epochs = score, p.epoch + 1, 0
        t.best_val_logits = logits
        if t.d.main:
            t.ckpts.keep_best(t.kept.state_dict())
    else:
        p.bad_epochs += 1
    p.epoch += 1
    p.micro, p.epoch_loss = 0, 0.0
    save(t)
    if tc.early_stopping_patience and p.bad_epochs >= tc.early_stopping_patience:
        if t.d.main:
            print(f"early stopping: no {t.metric_name} gain for {p.bad_epochs} epochs", flush=True)
        return True
    return False


# --------------------------------------------------------------------------- the end

def finish(t: Trainer) -> dict[str, Any]:
    """Every rank takes the best weights (rank 0's, on every node), a single-label model's
    temperature or the multi-label threshold is fitted on val, and rank 0 saves the model folder."""
    tc, p, spec = t.cfg.train, t.progress, t.spec
    best = t.ckpts.best() if t.d.main else None
    if best is not None:
        t.model.load_state_dict(torch.load(best, map_location=t.d.device, weights_only=True))
    broadcast_weights(t.model, t.d)
    print(f"rank {t.d.rank}: final weights sha256={weights_digest(t.model)}", flush=True)
    threshold, calibration = None, {}
    if len(t.val) and (t.multi_label or tc.calibrate):
        logits = t.best_val_logits if t.best_val_logits is not None else \
            predict_logits(t.ddp, t.val, t.d, tc.eval_batch_size, t.pad_id, t.dtype)
        if t.multi_label:
            threshold = validation_metrics(t.val.labels, split_probabilities(logits, True), True)["threshold"]
            t.model.config.threshold = threshold
        else:  # on the logits at T = 1, as trained
            calibration = calibrate(logits, t.val.labels)
            t.model.config.calibration_temperature = calibration["temperature"]
    result = {"history": p.history, "best_epoch": p.best_epoch, "best_val": p.best,
              "selection_metric": t.metric_name, "threshold": threshold, **calibration, "steps": p.step,
              "train_samples": p.samples, "train_seconds": p.train_seconds,
              "train_samples_per_s": p.samples / max(p.train_seconds, 1e-9), "first_step_seconds": t.first_step_seconds,
              "world_size": t.d.world_size, "threads": torch.get_num_threads(), "device": str(t.d.device),
              "amp": str(t.dtype).replace("torch.", "") if t.dtype else "off", "model_uri": spec["output"]}
    if t.d.main:
        local = model_workdir(spec["output"], spec["checkpoint_dir"])
        save_folder(t.model, t.tokenizer, local)
        (local / "training.json").write_text(json.dumps(result, indent=2))
        upload_dir(local, spec["output"])
    t.log.sync()
    t.d.barrier()
    return result


def fit(spec: dict[str, Any], stop_after_steps: int | None = None) -> dict[str, Any] | None:
    """Train, evaluate on val every epoch, keep the best, and write a `save_pretrained` folder.

    `stop_after_steps` checkpoints and returns None early, as a preempted run would; a later
    call with the same spec resumes from that checkpoint.
    """
    t = setup(spec)
    preempted = False
    while t.progress.epoch < t.cfg.train.epochs:
        if run_epoch(t, stop_after_steps):
            preempted = True
            break
        if end_epoch(t):
            break
        if stop_after_steps is not None and t.progress.step >= stop_after_steps:
            preempted = True
            break
    t.d.barrier()
    if preempted:
        return None
    result = finish(t)
    if t.d.world_size > 1:
        dist.destroy_process_group()
    return result
