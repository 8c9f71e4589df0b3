"""The torchrun entrypoint and training loop: `python -m textclf.train <spec.json>`.

Every rank runs this module. The spec (written by the flow) holds the resolved config, the
shard manifest, and where the model, checkpoints and logs go. Rank 0 writes; all ranks train.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from textclf.config import TextclfConfig, TrainConfig, from_dict
from textclf.metrics import best_threshold, multi_hot, quick_metrics, resolve_metric
from textclf.modeling import build_model
from textclf.progress import progress
from textclf.sampling import BucketBatchSampler, collate, shard_indices
from textclf.storage import filesystem, is_remote, upload_dir


# --------------------------------------------------------------------------- distributed

@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def init_distributed(threads: int) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if threads > 0:
        torch.set_num_threads(threads)
    return Dist(rank=rank, world_size=world, local_rank=local, device=device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data

@dataclass
class Split:
    input_ids: list[np.ndarray]
    labels: list[Any]
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def load_split(uri: str) -> Split:
    fs, path = filesystem(uri)
    table = pq.read_table(path, columns=["input_ids", "label", "length"], filesystem=fs)
    ids = [np.asarray(x, dtype=np.int64) for x in table["input_ids"].to_numpy(zero_copy_only=False)]
    labels = table["label"].to_pylist()
    return Split(ids, labels, table["length"].to_numpy().astype(np.int64))


# --------------------------------------------------------------------------- loss

def make_loss(cfg: TrainConfig, multi_label: bool, train_labels: list[Any], n_labels: int) -> Callable:
    if multi_label:
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y.float())
    weight = None
    if cfg.class_weights:
        counts = np.bincount(np.asarray(train_labels), minlength=n_labels).astype(np.float64)
        weight = torch.tensor(counts.sum() / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = weight.to(logits.device) if weight is not None else None
        if cfg.loss == "focal":
            logp = F.log_softmax(logits.float(), -1)
            ce = F.nll_loss(logp, y, weight=w, reduction="none")
            pt = logp.gather(1, y[:, None]).squeeze(1).exp()
            return ((1 - pt) ** cfg.focal_gamma * ce).mean()
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=cfg.label_smoothing)

    return loss


def labels_tensor(labels: list[Any], multi_label: bool, n_labels: int) -> torch.Tensor:
    if multi_label:
        return torch.from_numpy(multi_hot(labels, n_labels))
    return torch.tensor(labels, dtype=torch.long)


# --------------------------------------------------------------------------- optimisation

_BLOCK = re.compile(r"\.layers?\.(\d+)\.")


def _depth(name: str, n_blocks: int) -> int:
    """Of a backbone parameter: 0 for the embeddings, k + 1 for block k, n_blocks + 1 above them."""
    if "embed" in name:
        return 0
    block = _BLOCK.search(name)
    return int(block.group(1)) + 1 if block else n_blocks + 1


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW without decay on biases and norms; the head may take its own learning rate, and with
    `layer_decay` < 1 each block (the embeddings at the bottom) learns that much slower than the one
    above it: the pretrained lower layers hold the most general features, so they should move least."""
    n_blocks = model.config.backbone_config.num_hidden_layers
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
        head = not name.startswith("backbone.")
        groups.setdefault((no_decay, head, n_blocks + 1 if head else _depth(name, n_blocks)), []).append(p)
    # Backbone groups first, top block first: the first group runs at train.lr, which the bar and logs show.
    params = [{"params": ps, "weight_decay": 0.0 if nd else cfg.weight_decay,
               "lr": (cfg.head_lr or cfg.lr) if head else cfg.lr * cfg.layer_decay ** max(n_blocks - depth, 0)}
              for (nd, head, depth), ps in sorted(groups.items(), key=lambda g: (g[0][1], -g[0][2]))]
    # One fused kernel on CPU too: the foreach step took about a third of a MiniLM step on 2 cores.
    return torch.optim.AdamW(params, lr=cfg.lr, fused=True)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    from transformers import get_scheduler

    return get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                         num_training_steps=total_steps)


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.bfloat16 if cfg.amp == "bf16" else None


# --------------------------------------------------------------------------- checkpoints

class Checkpoints:
    """Resumable state in `<dir>/step-<n>/`; `<dir>/latest` names the newest complete one."""

    def __init__(self, root: Path, d: Dist):
        self.root, self.d = root, d
        root.mkdir(parents=True, exist_ok=True)

    def latest(self) -> Path | None:
        marker = self.root / "latest"
        return self.root / marker.read_text().strip() if marker.exists() else None

    def save(self, step: int, state: dict[str, Any], model: nn.Module) -> None:
        folder = self.root / f"step-{step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        torch.save(rng, folder / f"rng-{self.d.rank}.pt")
        if self.d.main:
            torch.save({**state, "model": unwrap(model).state_dict()}, folder / "state.pt")
        self.d.barrier()
        if self.d.main:
            tmp = self.root / "latest.tmp"
            tmp.write_text(folder.name)
            tmp.replace(self.root / "latest")
            for old in sorted(self.root.glob("step-*"))[:-2]:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        self.d.barrier()

    def load(self, folder: Path) -> dict[str, Any]:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
        rng = torch.load(folder / f"rng-{self.d.rank}.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return state


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class EmbeddingAttack:
    """FGM adversarial training (Miyato et al., 2017): each batch is fit once more with the word
    embeddings moved `eps` (L2) up the loss gradient. The model must then classify a sentence and
    its worst nearby wording alike, which regularizes against memorising exact phrasings; it costs
    a second forward and backward pass per batch.
    """

    def __init__(self, model: nn.Module, eps: float):
        self.weight = unwrap(model).get_input_embeddings().weight
        self.eps = eps

    @contextmanager
    def perturbed(self) -> Iterator[None]:
        grad = self.weight.grad
        norm = grad.norm().item() if grad is not None else 0.0  # one device sync per batch, not three
        if not math.isfinite(norm) or norm == 0:
            yield
            return
        clean = self.weight.data.clone()  # restored bit for bit: resumed runs stay identical
        self.weight.data.add_(grad, alpha=self.eps / norm)
        try:
            yield
        finally:
            self.weight.data.copy_(clean)


# --------------------------------------------------------------------------- evaluation

@torch.inference_mode()
def predict_probs(model: nn.Module, split: Split, d: Dist, batch_size: int, pad_id: int, multi_label: bool,
                  dtype: torch.dtype | None) -> np.ndarray:
    """Probabilities for a whole split, computed across ranks and gathered in order."""
    model.eval()
    mine = shard_indices(len(split), d.world_size, d.rank)
    order = mine[np.argsort(split.lengths[mine], kind="stable")]
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(d.device) for k, v in collate([split.input_ids[i] for i in idx], pad_id).items()}
        with torch.autocast(d.device.type, dtype=dtype, enabled=dtype is not None):
            logits = unwrap(model)(**batch).logits.float()
        probs = torch.sigmoid(logits) if multi_label else logits.softmax(-1)
        out.update(zip(idx.tolist(), probs.cpu().numpy()))
    parts = d.gather(np.stack([out[i] for i in mine]) if len(mine) else None)
    model.train()
    return np.concatenate([p for p in parts if p is not None])


# --------------------------------------------------------------------------- the loop

def fit(spec: dict[str, Any], stop_after_steps: int | None = None) -> dict[str, Any] | None:
    """Train, evaluate on val every epoch, keep the best, and write a `save_pretrained` folder.

    `stop_after_steps` checkpoints and returns early, as a preempted run would; a later call
    with the same spec resumes from that checkpoint.
    """
    cfg: TextclfConfig = from_dict(spec["config"])
    tc = cfg.train
    manifest = spec["manifest"]
    multi_label = bool(manifest["multi_label"])
    id2label = {int(k): v for k, v in manifest["id2label"].items()}
    n_labels = len(id2label)

    d = init_distributed(tc.threads_per_proc or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    seed_everything(tc.seed)
    train, val = load_split(manifest["shards"]["train"]), load_split(manifest["shards"]["val"])
    if len(train) == 0:
        raise ValueError("the train split is empty")

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(manifest["tokenizer"])
    pad_id = tokenizer.pad_token_id or 0
    model = build_model(cfg.model.backbone, id2label, pooling=cfg.model.pooling, head_hidden=cfg.model.head_hidden,
                        head_dropout=cfg.model.head_dropout, head_layernorm=cfg.model.head_layernorm,
                        multi_label=multi_label).to(d.device)
    per_rank = tc.batch_size // (d.world_size * tc.grad_accum)
    if per_rank < 1:
        raise ValueError(f"train.batch_size={tc.batch_size} is smaller than ranks x grad_accum "
                         f"({d.world_size} x {tc.grad_accum})")
    sampler = BucketBatchSampler(train.lengths, per_rank, d.world_size, d.rank, tc.seed, tc.bucket_batches)
    micro_per_epoch = len(sampler)
    steps_per_epoch = math.ceil(micro_per_epoch / tc.grad_accum)
    total_steps = steps_per_epoch * tc.epochs
    optimizer = make_optimizer(model, tc)
    scheduler = make_scheduler(optimizer, tc, total_steps)
    loss_fn = make_loss(tc, multi_label, train.labels, n_labels)
    dtype = amp_dtype(tc, d.device)
    # An average of the recent weights, not the last noisy step, is what gets evaluated and kept. It starts
    # one step from the pretrained backbone, and that start's share fades as decay**steps: a gentle pull back
    # toward general features for short fine-tunes.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema)) if tc.ema else None
    kept = ema.module if ema is not None else model
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None) \
        if d.world_size > 1 else model
    metric_name = resolve_metric(tc.metric, multi_label)

    ckpts = Checkpoints(Path(spec["checkpoint_dir"]), d)
    state = {"epoch": 0, "micro": 0, "step": 0, "best": -math.inf, "best_epoch": -1, "bad_epochs": 0,
             "history": [], "samples": 0, "train_seconds": 0.0, "epoch_loss": 0.0}
    best_path = Path(spec["checkpoint_dir"]) / "best.pt"
    resume_from = ckpts.latest()
    if resume_from is not None:
        loaded = ckpts.load(resume_from)
        unwrap(ddp).load_state_dict(loaded.pop("model"))
        optimizer.load_state_dict(loaded.pop("optimizer"))
        scheduler.load_state_dict(loaded.pop("scheduler"))
        if ema is not None:
            ema.load_state_dict(loaded.pop("ema"))
        state.update(loaded)
        if d.main:
            print(f"resumed from {resume_from} (epoch {state['epoch']}, step {state['step']})", flush=True)

    log_path = Path(spec["log_dir"]) / "metrics.jsonl"
    tracker = None
    if d.main:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if spec.get("mlflow_run_id"):
            from textclf.registry import MetricLogger

            tracker = MetricLogger(cfg.registry.tracking_uri, spec["mlflow_run_id"])

    def log(record: dict[str, Any]) -> None:
        """Rank 0: a JSONL line, and live metrics in the flow's MLflow run when it has one."""
        if d.main:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if tracker is not None:
                tracker.log(record)

    def snapshot() -> dict[str, Any]:
        return {**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                **({"ema": ema.state_dict()} if ema is not None else {})}

    def micro_loss(batch: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(d.device.type, dtype=dtype, enabled=dtype is not None):
            logits = ddp(**batch).logits
        return loss_fn(logits, y) / tc.grad_accum

    attack = EmbeddingAttack(ddp, tc.fgm) if tc.fgm else None
    ddp.train()
    stopped = False
    while state["epoch"] < tc.epochs and not stopped:
        sampler.epoch, sampler.skip = state["epoch"], state["micro"]
        bar = progress(micro_per_epoch, f"epoch {state['epoch'] + 1}/{tc.epochs}", disable=not d.main,
                       initial=state["micro"])
        t0, running = time.perf_counter(), []
        for idx in sampler:
            batch = {k: v.to(d.device) for k, v in collate([train.input_ids[i] for i in idx], pad_id).items()}
            y = labels_tensor([train.labels[i] for i in idx], multi_label, n_labels).to(d.device)
            boundary = (state["micro"] + 1) % tc.grad_accum == 0 or state["micro"] + 1 == micro_per_epoch
            sync = ddp.no_sync() if (d.world_size > 1 and not boundary) else nullcontext()
            with sync:
                loss = micro_loss(batch, y)
                loss.backward()
                if attack is not None:
                    with attack.perturbed():
                        micro_loss(batch, y).backward()
            running.append(loss.item() * tc.grad_accum)
            state["epoch_loss"] += running[-1]
            state["micro"] += 1
            state["samples"] += len(idx) * d.world_size
            bar.update(1)
            if not boundary:
                continue
            if tc.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(ddp.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update_parameters(model)
            state["step"] += 1
            if state["step"] % 10 == 0:
                log({"kind": "step", "step": state["step"], "epoch": state["epoch"] + state["micro"] / micro_per_epoch,
                     "loss": float(np.mean(running[-10 * tc.grad_accum:])), "lr": scheduler.get_last_lr()[0]})
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if tc.checkpoint_every_steps and state["step"] % tc.checkpoint_every_steps == 0:
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                ckpts.save(state["step"], snapshot(), ddp)
                if stop_after_steps is not None and state["step"] >= stop_after_steps:
                    stopped = True
                    break
        bar.close()
        if stopped:
            break
        state["train_seconds"] += time.perf_counter() - t0
        probs = predict_probs(kept, val, d, tc.eval_batch_size, pad_id, multi_label, dtype)
        metrics = quick_metrics(val.labels, probs, multi_label) if len(val) else {}
        score = metrics.get(metric_name, -state["epoch_loss"] / max(state["micro"], 1))
        record = {"kind": "epoch", "epoch": state["epoch"] + 1, "step": state["step"],
                  "train_loss": state["epoch_loss"] / max(state["micro"], 1),
                  "samples_per_s": state["samples"] / max(state["train_seconds"], 1e-9),
                  **{f"val_{k}": v for k, v in metrics.items()}}
        state["history"].append(record)
        log(record)
        if d.main:
            print(json.dumps(record), flush=True)
        if score > state["best"]:
            state.update(best=score, best_epoch=state["epoch"] + 1, bad_epochs=0)
            if d.main:
                torch.save(kept.state_dict(), best_path)
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["micro"], state["epoch_loss"] = 0, 0.0
        ckpts.save(state["step"], snapshot(), ddp)
        if tc.early_stopping_patience and state["bad_epochs"] >= tc.early_stopping_patience:
            if d.main:
                print(f"early stopping: no {metric_name} gain for {state['bad_epochs']} epochs", flush=True)
            break
        if stop_after_steps is not None and state["step"] >= stop_after_steps:
            stopped = True

    if stopped:
        d.barrier()
        return None
    d.barrier()
    result = finish(spec, cfg, ddp, tokenizer, val, d, state, best_path, pad_id, multi_label, dtype, metric_name)
    if d.world_size > 1:
        dist.destroy_process_group()
    return result


def finish(spec, cfg, ddp, tokenizer, val, d, state, best_path, pad_id, multi_label, dtype, metric_name):
    """Restore the best weights, tune the multi-label threshold, save the model folder."""
    model = unwrap(ddp)
    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=d.device, weights_only=True))
    threshold = None
    if multi_label and len(val):
        probs = predict_probs(ddp, val, d, cfg.train.eval_batch_size, pad_id, multi_label, dtype)
        threshold, _ = best_threshold(multi_hot(val.labels, probs.shape[1]), probs)
        model.config.threshold = threshold
    result = {"history": state["history"], "best_epoch": state["best_epoch"], "best_val": state["best"],
              "selection_metric": metric_name, "threshold": threshold, "steps": state["step"],
              "train_samples": state["samples"], "train_seconds": state["train_seconds"],
              "train_samples_per_s": state["samples"] / max(state["train_seconds"], 1e-9),
              "world_size": d.world_size, "device": str(d.device),
              "amp": str(dtype).replace("torch.", "") if dtype else "off", "model_uri": spec["output"]}
    if d.main:
        local = Path(spec["output"]) if not is_remote(spec["output"]) else Path(spec["checkpoint_dir"]) / "model"
        model.save_pretrained(local)
        tokenizer.save_pretrained(local)
        (local / "training.json").write_text(json.dumps(result, indent=2))
        upload_dir(local, spec["output"])
    d.barrier()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textclf.train", description=__doc__)
    parser.add_argument("spec", help="JSON spec written by TrainFlow (config, manifest, output paths)")
    parser.add_argument("--stop-after-steps", type=int, default=None, help="checkpoint and stop (preemption drill)")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    fit(spec, stop_after_steps=args.stop_after_steps)


if __name__ == "__main__":
    main()
