"""The train step as one library call: where the run's files go, the torchrun command, the result.

A small launcher of our own: metaflow-torchrun crashes on local runs and mangles dict
arguments, and all we need is the torchrun command line with the rendezvous settings.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from textclf.branches import artifact_root
from textclf.config import TextclfConfig, to_dict
from textclf.environment import usable_cpus
from textclf.storage import is_remote, join

WORKER = "textclf.training.worker"


def run_paths(cfg: TextclfConfig, flow: str, run_key: str) -> dict[str, str]:
    """Where one run's big artifacts live: `<artifact_root>[/<branch>]/<flow>/<run>/...`, never shared.

    Checkpoints and the training log are written to a working folder on the machine that trains
    (`checkpoint_dir`, `log_dir`) and kept durably beside the other artifacts (`checkpoints`,
    `logs`): the same folders when the root is local, a mirror on gs:// when it is remote."""
    root = join(artifact_root(cfg.artifact_root, cfg.branch), flow, run_key)
    local = Path(tempfile.gettempdir(), "textclf", flow, run_key) if is_remote(root) else Path(root)
    return {"root": root, "data": join(root, "data"), "model": join(root, "model"),
            "checkpoints": join(root, "checkpoints"), "logs": join(root, "logs"),
            "checkpoint_dir": str(local / "checkpoints"), "log_dir": str(local / "logs"), "spec": str(local / "spec.json")}


def model_workdir(output: str, checkpoint_dir: str) -> Path:
    """Where rank 0 writes the model folder: `output` itself when local, else a working copy beside
    the checkpoints that is then uploaded to `output`."""
    return Path(checkpoint_dir) / "model" if is_remote(output) else Path(output)


def cuda_devices() -> int:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES applies), asked of the CUDA driver as
    torch would ask it: the train step's own process never imports torch (2.5 s here), only its
    torchrun and the ranks do."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:  # no NVIDIA driver: a CPU machine
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def default_nproc(requested: int) -> int:
    """One process per GPU; on CPU one process using every core (measured faster than DDP here)."""
    return requested if requested > 0 else cuda_devices() or 1


def torchrun_command(spec_path: str, nproc: int, nnodes: int = 1, node_rank: int = 0,
                     master_addr: str | None = None, master_port: int = 29500,
                     extra: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={master_addr}",
                f"--master-port={master_port}"]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", WORKER, spec_path, *(extra or [])]


def threads_per_proc(requested: int, nproc: int, concurrent: int = 1) -> int:
    """`train.threads_per_proc`, else the cores this process may use split between the processes of every
    training running on it at once: `concurrent` > 1 for a foreach's branches that run locally side
    by side. More threads than cores cost far more than a fair share: libgomp's idle threads spin at
    each barrier on the cores the others need (two TuneFlow trials on 2 cores used 304-327 CPU
    seconds each with 2 threads, 74-83 with 1, for the same training; `bench/tune.py`)."""
    return requested or max(1, usable_cpus() // (nproc * max(1, concurrent)))


# glibc maps big blocks on their own and unmaps them when freed, so a big tensor made anew each step
# comes back as fresh pages, faulted in one by one: zeroing MiniLM's word-embedding gradient (30522 x
# 384, 47 MB) took ~55 ms of a 230 ms bf16 step on 2 cores. No mmap and a high trim threshold keep
# freed memory in the heap for the next step; RSS stays at the peak, which a training process reaches
# in its first steps anyway.
KEEP_FREED_MEMORY = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def rank_env(threads: int, keep_freed_memory: bool = True) -> dict[str, str]:
    """The ranks' environment: this one, with `threads` OpenMP / MKL threads each and, unless the
    caller set GLIBC_TUNABLES itself, the allocator kept from returning freed memory to the kernel
    (`train.keep_freed_memory`; inert where the C library is not glibc)."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if keep_freed_memory:
        env.setdefault("GLIBC_TUNABLES", KEEP_FREED_MEMORY)
    return env


def run_torchrun(spec_path: str, nproc: int, env: dict[str, str], **rendezvous) -> None:
    """Run training to completion in `env` (`rank_env`); a failing rank fails this call with its
    exit status. The worker takes its torch thread count from OMP_NUM_THREADS."""
    threads = env["OMP_NUM_THREADS"]
    cmd = torchrun_command(spec_path, nproc, **rendezvous)
    print(f"launching ({nproc} x {threads} threads):", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"training failed (torchrun exit status {done.returncode}); see the log above")


def train_model(cfg: TextclfConfig, manifest: dict[str, Any], paths: dict[str, str], nnodes: int = 1,
                node_rank: int = 0, master_addr: str | None = None, mlflow_run_id: str | None = None,
                concurrent: int = 1, profile: bool = False) -> dict[str, Any]:
    """Fine-tune on the manifest's shards with torchrun; returns the rank-0 training record.
    With `mlflow_run_id`, rank 0 logs its step and epoch metrics into that MLflow run; `concurrent`:
    trainings sharing this machine's cores at once (see `threads_per_proc`); `profile`: rank 0 then
    scores val and test and stores the drift profile beside the model (`textclf.training.worker`)."""
    remote = is_remote(paths["root"])
    spec = {"config": to_dict(cfg), "manifest": manifest, "output": paths["model"],
            "checkpoint_dir": paths["checkpoint_dir"], "log_dir": paths["log_dir"], "mlflow_run_id": mlflow_run_id,
            "profile": profile, "checkpoint_mirror": paths["checkpoints"] if remote else None,
            "log_mirror": join(paths["logs"], "metrics.jsonl") if remote else None}
    Path(paths["spec"]).parent.mkdir(parents=True, exist_ok=True)
    Path(paths["spec"]).write_text(json.dumps(spec, indent=2))
    nproc = default_nproc(cfg.train.nproc_per_node)
    rendezvous = {"nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr} if nnodes > 1 else {}
    threads = threads_per_proc(cfg.train.threads_per_proc, nproc, concurrent)
    run_torchrun(paths["spec"], nproc, rank_env(threads, cfg.train.keep_freed_memory), **rendezvous)
    if node_rank != 0:
        return {}
    return json.loads((model_workdir(paths["model"], paths["checkpoint_dir"]) / "training.json").read_text())
