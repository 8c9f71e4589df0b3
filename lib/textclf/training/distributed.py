"""One rank's place in a torchrun job: rank, world size, device, and collective helpers."""
from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from textclf.environment import usable_cpus


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


def default_threads() -> int:
    """The launcher's choice (`OMP_NUM_THREADS`, set for every rank: it knows which trainings share
    the cores), else the cores this process may use split evenly between its ranks."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, usable_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def init_distributed(threads: int) -> Dist:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPUs)."""
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


def broadcast_weights(model: nn.Module, d: Dist) -> None:
    """Every rank takes rank 0's weights (in place), whichever node it runs on."""
    if d.world_size > 1:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def weights_digest(model: nn.Module) -> str:
    """A SHA-256 of the weights, to show that every rank ended with the same ones."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
