"""Preprocessing at scale: textclf's Dask step vs one process of pandas + a fast tokenizer.

    python bench/preprocess.py                        # reference: 100k and 1M rows
    python bench/preprocess.py --rows 20000,100000    # a quick check
    python bench/preprocess.py --set data.dask.blocksize=16000000   # textclf with other settings

SST-2's train split is replicated up to N rows; each copy gets a distinct suffix (` r<k>`) so
copies are not deduplicated away (SST-2's own repeated sentences still are: `rows_out`). rows/s
counts rows read, on both sides. Both sides read the
same TSV and write token ids to Parquet. textclf runs `textclf.preprocess.preprocess` as TrainFlow
does (LocalCluster, 2 worker processes, validation, cleaning, dedupe, split, tokenize); the
baseline is the script a user would write (`read_csv`, one batched tokenizer call with its
default Rust-thread parallelism, `to_parquet`). Each side runs in a fresh child process; peak
memory is the whole process tree (Dask workers included), sampled every 50 ms. The replicated TSV
is written by a child of its own, so the memory that making it takes is counted on neither side.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import PeakRSS, Timer, emit, log, machine, offline, ratio, require_sst2, sst2


def replicate(rows: int, dest: Path) -> None:
    """SST-2 train repeated up to `rows`, copies made distinct so none is deduplicated away."""
    import pandas as pd

    base = sst2("train")
    reps = -(-rows // len(base))
    frames = []
    for k in range(reps):
        copy = base.copy()
        if k:
            copy["text"] = copy["text"].str.rstrip() + f" r{k}"
        frames.append(copy)
    frame = pd.concat(frames, ignore_index=True).head(rows)
    frame.rename(columns={"text": "sentence"}).to_csv(dest, sep="\t", index=False)


def run_textclf(source: Path, out: Path, overrides: str = "") -> dict[str, Any]:
    from textclf.config import compose
    from textclf.data.preprocess import preprocess

    cfg = compose(f"data=sst2 data.source={source} data.train=null data.val=null data.test=null "
                  f"artifact_root={out} {overrides}")
    manifest = preprocess(cfg, str(out / "data"))
    return {"rows_out": sum(s["count"] for s in manifest["token_lengths"].values())}


def run_baseline(source: Path, out: Path) -> dict[str, Any]:
    import pandas as pd
    from transformers import AutoTokenizer

    from textclf.model.backbones import resolve_backbone

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm-l6"))
    frame = pd.read_csv(source, sep="\t", quoting=3, dtype={"sentence": str, "label": int})
    ids = tokenizer(frame["sentence"].tolist(), truncation=True, max_length=128)["input_ids"]
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": frame["sentence"], "label": frame["label"], "input_ids": ids,
                  "length": [len(x) for x in ids]}).to_parquet(out / "tokens.parquet", index=False)
    return {"rows_out": len(frame)}


def child(side: str, source: Path, out: Path, overrides: str) -> None:
    """One side in this (fresh) process: time it and print its JSON."""
    if side == "baseline":
        os.environ.pop("TOKENIZERS_PARALLELISM", None)  # the tokenizer's default: Rust threads on
    with Timer() as t:
        result = run_textclf(source, out, overrides) if side == "textclf" else run_baseline(source, out)
    print(json.dumps({**result, "seconds": t.seconds}), flush=True)


def measure(side: str, source: Path, out: Path, rows: int, overrides: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", side, "--source", str(source), "--out", str(out), "--set", overrides]
    with PeakRSS() as peak:
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rows_per_s": round(rows / result["seconds"], 1), "seconds": round(result["seconds"], 1),
            "peak_rss_mb": peak.peak_mb, "rows_out": result["rows_out"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--set", default="", help="config overrides for textclf's side, e.g. 'data.dask.blocksize=8000000'")
    parser.add_argument("--child", choices=["textclf", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--replicate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    offline()
    if args.child:
        child(args.child, args.source, args.out, args.set)
        return
    if args.replicate:
        replicate(args.replicate, args.source)
        return
    require_sst2("preprocess")
    sizes = [int(r) for r in args.rows.split(",")]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-", dir=args.workdir) as tmp:
        for rows in sizes:
            source = Path(tmp) / f"sst2-{rows}.tsv"
            subprocess.run([sys.executable, __file__, "--replicate", str(rows), "--source", str(source)], check=True)
            entry = {}
            for side in ("textclf", "baseline"):
                log(f"{rows} rows: {side}")
                entry[side] = measure(side, source, Path(tmp) / f"{side}-{rows}", rows, args.set)
            entry["ratio"] = ratio(entry["textclf"]["rows_per_s"], entry["baseline"]["rows_per_s"])
            results[str(rows)] = entry
    first, last = str(sizes[0]), str(sizes[-1])
    emit({
        "bench": "preprocess", "rows": sizes, "overrides": args.set, **results,
        "ratio": results[last]["ratio"],
        "memory_growth": {side: ratio(results[last][side]["peak_rss_mb"], results[first][side]["peak_rss_mb"])
                          for side in ("textclf", "baseline")},
        "targets": {"ratio": 1.3, "memory_growth": 1.2, "peak_rss_mb": 2048},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
