"""Cross-validation of the best config: train+val regrouped into k stratified folds."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.storage import filesystem, join


def fold_manifest(manifest: dict[str, Any], k: int, fold: int, out_uri: str, seed: int) -> dict[str, Any]:
    """Train+val regrouped into k stratified folds by a seeded hash of the row id; `fold` validates.

    Test stays untouched: cross-validation measures the config, the test split the final model.
    """
    tables = []
    for split in ("train", "val"):
        fs, path = filesystem(manifest["shards"][split])
        tables.append(pq.read_table(path, filesystem=fs))
    table = pa.concat_tables(tables)
    frame = table.select(["row_id", "label"]).to_pandas()
    frame["stratum"] = frame["label"].map(str)
    frame["h"] = frame["row_id"].map(lambda r: hashlib.blake2b(f"fold:{seed}:{r}".encode(), digest_size=8).hexdigest())
    order = frame.sort_values(["stratum", "h"], kind="stable")
    in_fold = np.zeros(len(frame), dtype=bool)
    in_fold[order.index[order.groupby("stratum").cumcount().to_numpy() % k == fold]] = True
    shards = dict(manifest["shards"])
    for split, mask in (("train", ~in_fold), ("val", in_fold)):
        shards[split] = join(out_uri, f"fold-{fold}", split)
        fs, path = filesystem(shards[split])
        fs.makedirs(path, exist_ok=True)
        pq.write_table(table.filter(pa.array(mask)), f"{path}/part-00000.parquet", filesystem=fs)
    return {**manifest, "shards": shards}

