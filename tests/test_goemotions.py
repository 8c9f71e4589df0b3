"""`data=goemotions` reads the official GoEmotions split as the multi-label task it is: 28 labels,
`|`-joined, each split its own file, the multi-label recipe. Skips when the data set is absent."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from textclf.config import compose
from textclf.data.preprocess import preprocess

pytestmark = pytest.mark.slow
GOEMOTIONS = ROOT.parent / "shared" / "datasets" / "goemotions"
SPLITS = {"train": "train.csv", "val": "dev.csv", "test": "test.csv"}


@pytest.mark.skipif(not all((GOEMOTIONS / f).exists() for f in SPLITS.values()), reason=f"GoEmotions not found under {GOEMOTIONS}")
def test_goemotions_preprocesses_to_its_28_labels_with_the_official_split(tmp_path: Path):
    cfg = compose("data=goemotions data.dask.scheduler_address=sync")
    manifest = preprocess(cfg, str(tmp_path / "shards"))
    raw = {split: pd.read_csv(GOEMOTIONS / name) for split, name in SPLITS.items()}
    names = {label for frame in raw.values() for cell in frame["labels"] for label in cell.split("|")}
    assert len(names) == 28 and sorted(manifest["id2label"].values()) == sorted(names)
    for split, frame in raw.items():  # dedupe drops a few repeated comments, and nothing else
        assert 0.97 * len(frame) < manifest["splits"][split]["rows"] <= len(frame)
    test = pq.read_table(manifest["shards"]["test"], columns=["text", "label"]).to_pandas()
    gold = {text: [sorted(cell.split("|")) for cell in cells]  # a few comments repeat, labelled apart
            for text, cells in raw["test"].groupby("text")["labels"].agg(list).items()}
    name = {int(k): v for k, v in manifest["id2label"].items()}
    found = [(sorted(name[i] for i in ids), gold[text])
             for text, ids in zip(test["text"], test["label"]) if text in gold]  # cleaning changes a few texts
    assert len(found) > 0.9 * len(test)
    assert all(got in want for got, want in found)  # every row keeps each of its labels, by name
