"""Resumable state in `<dir>/step-<n>/`; `<dir>/latest` names the newest complete one."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textclf.training.distributed import Dist, unwrap


class Checkpoints:
    """Model, optimizer, scheduler, counters (rank 0) and every rank's RNG state, two kept."""

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
