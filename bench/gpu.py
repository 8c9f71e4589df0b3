"""The GPU path, proven on a real TrainFlow train step: CUDA, bf16 autocast and NCCL, with the
training loop's samples/s and its model FLOPs utilisation (MFU).

    python bench/gpu.py                                    # every GPU here, the sample data, MiniLM
    python bench/gpu.py --overrides 'train.epochs=3 train.batch_size=128'
    python bench/gpu.py --shape-of FOLDER   # the backbone's architecture from FOLDER, random weights

Runs `python flows/train_flow.py run` (through bench/flow.py's isolated datastore) with
`train.resources.gpu=<all GPUs> train.amp=bf16`, then reads what the train step recorded: the
device, the autocast dtype, the world size and the training loop's samples/s. With two or more
GPUs the step's ranks all-reduce through NCCL; with one, the step has a single rank, so NCCL is
also checked on its own (a one-rank process group: init, all-reduce, broadcast), and the JSON
says which. MFU = samples/s x 6 x parameters x mean tokens per sample / the GPU's dense bf16
peak (attention's quadratic term left out: at 128 tokens it is a few per cent). Without CUDA it
prints one JSON line saying so and exits 0.

`--shape-of` is for a GPU machine that cannot hold the weights package (a device whose file
transfer is capped below its 88 MB): it takes the config and tokenizer from FOLDER and trains
that architecture from seeded random weights. Speed and MFU depend on the shape, not the weights.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from common import emit, machine, offline
from flow import breakdown, run_flow

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}  # dense, per GPU


def nccl_check() -> dict[str, Any]:
    """A one-rank NCCL process group on GPU 0: the collectives DDP uses, on the real backend."""
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29555")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda:0"))
    try:
        x = torch.arange(4, dtype=torch.bfloat16, device="cuda:0")
        dist.all_reduce(x)
        dist.broadcast(x, src=0)
        torch.cuda.synchronize()
        return {"backend": dist.get_backend(), "nccl_version": ".".join(map(str, torch.cuda.nccl.version())),
                "all_reduce_ok": x.tolist() == [0.0, 1.0, 2.0, 3.0]}
    finally:
        dist.destroy_process_group()


def mfu(run_path: str, samples_per_s: float, gpus: int) -> dict[str, Any]:
    import torch
    from metaflow import Run

    from textclf.data.shards import read_split
    from textclf.model.predictor import Predictor

    run = Run(run_path)
    manifest = run["preprocess"].task.data.manifest
    tokens = float(read_split(manifest["shards"]["train"], ["length"])["length"].mean())
    params = sum(p.numel() for p in Predictor(run["join_train"].task.data.training["model_uri"], device="cpu").model.parameters())
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    achieved = samples_per_s * 6 * params * tokens
    return {"gpu": name, "gpus": gpus, "parameters": params, "mean_tokens": round(tokens, 1),
            "achieved_tflops": round(achieved / 1e12, 2),
            "mfu": round(achieved / (peak * gpus), 4) if peak else None,
            "peak_bf16_tflops_per_gpu": peak and peak / 1e12}


def random_copy(folder: Path, dest: Path) -> Path:
    """The architecture and tokenizer in `folder`, with seeded random weights, saved to `dest`."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(dest)
    AutoTokenizer.from_pretrained(folder).save_pretrained(dest)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", default="train.epochs=2", help="more Hydra overrides for the flow")
    parser.add_argument("--shape-of", type=Path, default=None,
                        help="train this folder's architecture from random weights (config and tokenizer only)")
    args = parser.parse_args()
    offline()
    import torch

    if not torch.cuda.is_available():
        emit({"bench": "gpu", "skipped": "no CUDA device on this machine", "machine": machine()})
        return
    gpus = torch.cuda.device_count()
    overrides = f"train.resources.gpu={gpus} train.amp=bf16 {args.overrides}"
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        if args.shape_of:
            overrides += f" model.backbone={random_copy(args.shape_of, Path(tmp) / 'backbone')}"
        run_id, wall = run_flow(overrides, Path(tmp))
        result = breakdown(run_id, wall)
        from metaflow import Run

        training = Run(result["run"])["join_train"].task.data.training
        figures = mfu(result["run"], float(training["train_samples_per_s"]), gpus)
    emit({"bench": "gpu", "overrides": overrides, "weights": "random" if args.shape_of else "pretrained", "device": training["device"], "amp": training["amp"],
          "world_size": training["world_size"], "nccl_in_train_step": training["world_size"] > 1,
          "nccl_check": nccl_check(), **figures, **result, "machine": machine()})


if __name__ == "__main__":
    main()
