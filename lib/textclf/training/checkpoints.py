"""Resumable state in `<dir>/step-<n>/`; `<dir>/latest` names the newest complete one.

With a `mirror` (a folder beside the run's other artifacts, gs:// when the artifact root is
remote), each checkpoint is copied there once complete and the mirror's `latest` is written
last, so a retried task on a fresh machine (a preempted pod) resumes from it. The local folder
stays the working copy: saving writes locally once, then uploads each file once.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textclf.storage import exists, filesystem, get_file, join, put_file, read_text, remove, write_bytes
from textclf.training.distributed import Dist, unwrap

KEEP = 2  # checkpoints kept, locally and in the mirror
BEST = "best.pt"


class Checkpoints:
    """Model, optimizer, scheduler, counters (rank 0) and every rank's RNG state; the best weights."""

    def __init__(self, root: Path, d: Dist, mirror: str | None = None):
        self.root, self.d, self.mirror = root, d, mirror
        self.fetched_from: str | None = None  # the mirror folder the newest checkpoint came from
        root.mkdir(parents=True, exist_ok=True)

    def _files(self, folder: Path) -> list[Path]:
        return [folder / "state.pt", folder / f"rng-{self.d.rank}.pt"]

    def latest(self) -> Path | None:
        """The newest complete checkpoint this rank can load: here, or fetched from the mirror."""
        marker = self.root / "latest"
        local = self.root / marker.read_text().strip() if marker.exists() else None
        if local is not None and not all(f.exists() for f in self._files(local)):
            local = None  # another node's rank 0 holds its state: take the mirror's copy
        remote = read_text(join(self.mirror, "latest")).strip() if self.mirror and exists(join(self.mirror, "latest")) \
            else None
        if remote is None or (local is not None and local.name >= remote):
            return local
        folder = self.root / remote
        for file in self._files(folder):
            get_file(join(self.mirror, remote, file.name), file)
        self.fetched_from = join(self.mirror, remote)
        return folder

    def save(self, step: int, state: dict[str, Any], model: nn.Module) -> None:
        folder = self.root / f"step-{step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        torch.save(rng, folder / f"rng-{self.d.rank}.pt")
        if self.d.main:
            torch.save({**state, "model": unwrap(model).state_dict()}, folder / "state.pt")
        if self.mirror:  # every rank sends what it wrote
            for file in self._files(folder):
                if file.exists():
                    put_file(file, join(self.mirror, folder.name, file.name))
        self.d.barrier()
        if self.d.local_rank == 0:  # the newest complete one, on this node's disk
            tmp = self.root / "latest.tmp"
            tmp.write_text(folder.name)
            tmp.replace(self.root / "latest")
            for old in sorted(self.root.glob("step-*"))[:-KEEP]:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        if self.d.main and self.mirror:
            write_bytes(join(self.mirror, "latest"), folder.name.encode())
            for old in sorted(f"step-{s:08d}" for s in self._mirrored_steps())[:-KEEP]:
                remove(join(self.mirror, old))
        if self.d.main:
            print(f"checkpoint {folder.name} saved" + (f" to {join(self.mirror, folder.name)}" if self.mirror else ""),
                  flush=True)
        self.d.barrier()

    def _mirrored_steps(self) -> list[int]:
        fs, path = filesystem(self.mirror)
        return sorted(int(p.rstrip("/").rsplit("step-", 1)[1]) for p in fs.ls(path) if "/step-" in p)

    def load(self, folder: Path) -> dict[str, Any]:
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
        rng = torch.load(folder / f"rng-{self.d.rank}.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return state

    def keep_best(self, weights: dict[str, torch.Tensor]) -> None:
        """Rank 0: the best weights so far, kept beside the checkpoints (and in the mirror)."""
        torch.save(weights, self.root / BEST)
        if self.mirror:
            put_file(self.root / BEST, join(self.mirror, BEST))

    def best(self) -> Path | None:
        """Rank 0: where the best weights are, fetched from the mirror on a fresh machine."""
        if not (self.root / BEST).exists() and self.mirror and exists(join(self.mirror, BEST)):
            get_file(join(self.mirror, BEST), self.root / BEST)
        return self.root / BEST if (self.root / BEST).exists() else None
