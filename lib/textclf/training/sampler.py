"""Length-bucketed, distributed, resumable batching (padding is per batch: `textclf.model.padding`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BucketBatchSampler:
    """Batches of similar length, identical in number on every rank, reproducible per epoch.

    Each epoch shuffles with `seed + epoch`, sorts windows of `bucket_batches` global batches by
    length, cuts them into global batches (one slice per rank, so ranks do similar work), and
    shuffles the batch order. `skip` resumes mid-epoch at a batch position.
    """

    lengths: np.ndarray
    batch_size: int  # per rank
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    bucket_batches: int = 50
    shuffle: bool = True
    epoch: int = 0
    skip: int = 0

    def global_batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        global_size = self.batch_size * self.world_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i:i + global_size] for i in range(0, n, global_size)]
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n)
        window = global_size * max(1, self.bucket_batches)
        batches = []
        for start in range(0, n, window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + global_size] for i in range(0, len(chunk), global_size)]
        rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return -(-len(self.lengths) // (self.batch_size * self.world_size))

    def __iter__(self):
        for global_batch in self.global_batches()[self.skip:]:
            yield self._rank_slice(global_batch)

    def _rank_slice(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) < self.world_size:  # every rank must step: wrap the tail
            batch = np.resize(batch, self.world_size)
        per = -(-len(batch) // self.world_size)
        part = batch[self.rank * per:(self.rank + 1) * per]
        return part if len(part) else batch[-1:]


def shard_indices(n: int, world_size: int, rank: int) -> np.ndarray:
    """A rank's share for evaluation: contiguous, so gathered predictions keep their order."""
    per = -(-n // world_size)
    return np.arange(rank * per, min(n, (rank + 1) * per))
