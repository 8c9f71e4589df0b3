"""A split as training holds it in memory: token ids, labels and lengths, from the one shard reader."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from textclf.data.shards import read_split, token_ids
from textclf.evaluation.metrics import multi_hot


@dataclass
class Split:
    input_ids: list[np.ndarray]
    labels: list[Any]
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def load_split(uri: str) -> Split:
    frame = read_split(uri, ["input_ids", "label", "length"])
    labels = [y.tolist() if isinstance(y, np.ndarray) else int(y) for y in frame["label"]]
    return Split(token_ids(frame["input_ids"]), labels, frame["length"].to_numpy().astype(np.int64))


def labels_tensor(labels: list[Any], multi_label: bool, n_labels: int) -> torch.Tensor:
    if multi_label:
        return torch.from_numpy(multi_hot(labels, n_labels))
    return torch.tensor(labels, dtype=torch.long)
