"""Launch `textclf.train` on N processes per node through torch.distributed.run (torchrun).

A small launcher of our own: metaflow-torchrun crashes on local runs and mangles dict
arguments, and all we need is the torchrun command line with the rendezvous settings.
"""
from __future__ import annotations

import os
import subprocess
import sys

import torch


def default_nproc(requested: int) -> int:
    """One process per GPU; on CPU one process using every core (measured faster than DDP here)."""
    if requested > 0:
        return requested
    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def torchrun_command(spec_path: str, nproc: int, nnodes: int = 1, node_rank: int = 0,
                     master_addr: str | None = None, master_port: int = 29500,
                     extra: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={master_addr}",
                f"--master-port={master_port}"]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", "textclf.train", spec_path, *(extra or [])]


def run_torchrun(spec_path: str, nproc: int, threads_per_proc: int = 0, **rendezvous) -> None:
    """Run training to completion; a failing rank fails this call with its exit status."""
    env = dict(os.environ)
    cores = os.cpu_count() or 1
    env["OMP_NUM_THREADS"] = str(threads_per_proc or max(1, cores // nproc))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = torchrun_command(spec_path, nproc, **rendezvous)
    print("launching:", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"training failed (torchrun exit status {done.returncode}); see the log above")
