"""Batch predictions over a file: `textclf predict` and PredictFlow vs one `transformers.pipeline`
process, on the same rows and the same model folder, each a fresh process timed end to end (start,
model load, read, score, write), as a user would run them.

    python bench/predict.py                                  # the newest TrainFlow run here, 5,000 rows
    python bench/predict.py --model TrainFlow/123 --rows 20000 --shard-rows 5000

The model: `--model` (anything `textclf predict` takes); by default the newest successful TrainFlow
run in this folder's Metaflow store, i.e. what `bash scripts/quickstart.sh` trained, so the bench
needs no training of its own; with neither it prints a `skipped` line. The rows: SST-2's test
sentences (`bench/common.py`), else the embedded sample's texts, repeated up to `--rows`. All sides
get the same batch size; PredictFlow cuts the file into `--shard-rows` shards scored side by side.
On SST-2 each side's accuracy is reported too (null on the sample, which has no labels here): a model
trained on other labels stops the bench, as in bench/serve.py. `--rows 100` is the tiny size tests run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from common import ROOT, Timer, emit, gold_labels, log, machine, offline, ratio, sst2, sst2_path

# The baseline: one process that reads the file, runs the pipeline and writes labels and scores.
PIPELINE = """
import sys
import pandas as pd
from transformers import pipeline
import textclf.model.network  # registers the textclf model type with the Auto classes (until the folder carries it)
model, source, output, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = pd.read_csv(source, dtype=str, keep_default_na=False)["text"].tolist()
pipe = pipeline("text-classification", model=model, device=-1)
out = pipe(texts, batch_size=batch, truncation=True)
pd.DataFrame({"row": range(1, len(out) + 1), "label": [r["label"] for r in out],
              "score": [r["score"] for r in out]}).to_parquet(output)
"""


def latest_trained_model() -> str | None:
    """The newest successful TrainFlow run of this folder's Metaflow store, if any."""
    from metaflow import Flow, namespace
    from metaflow.exception import MetaflowNotFound

    namespace(None)
    try:
        run = Flow("TrainFlow").latest_successful_run
    except MetaflowNotFound:
        return None
    return run.pathspec if run is not None else None


def texts(rows: int) -> tuple[list[str], list[int] | None, str]:
    """`rows` texts (the source repeated), SST-2's 0/1 labels of them (None for the sample), the source."""
    if sst2_path("test").exists():
        frame, name = sst2("test"), "SST-2 test"
        base, ids = frame["text"].tolist(), frame["label"].tolist()
    else:
        base, ids, name = pd.read_csv(ROOT / "data" / "sample" / "reviews.csv")["text"].tolist(), None, "embedded sample"
    reps = -(-rows // len(base))
    return (base * reps)[:rows], (ids * reps)[:rows] if ids else None, name


def accuracy(labels: pd.Series, gold: list[str] | None) -> float | None:
    return round(float((labels.astype(str).to_numpy() == gold).mean()), 4) if gold else None


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one command in a fresh process (its output goes to stderr here)."""
    with Timer() as t:
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    log(done.stdout[-1500:], done.stderr[-1500:])
    return t.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="models:/..., TrainFlow/<id> or a model folder "
                                                      "(default: the newest successful TrainFlow run here)")
    parser.add_argument("--rows", type=int, default=5000, help="texts to score (the source repeated)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-rows", type=int, default=0, help="PredictFlow's shard size; 0: rows / cores")
    args = parser.parse_args()
    offline()
    model = args.model or latest_trained_model()
    if model is None:
        emit({"bench": "predict", "skipped": "no model: pass --model, or train one (bash scripts/quickstart.sh)"})
        return
    from textclf.registry.resolution import resolve_model

    folder = resolve_model(model).path  # every side loads the same local folder
    rows, ids, name = texts(args.rows)
    gold = gold_labels(Path(folder), ids) if ids else None
    shard_rows = args.shard_rows or -(-len(rows) // (os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        source = Path(tmp, "texts.csv")
        pd.DataFrame({"text": rows}).to_csv(source, index=False)
        log(f"textclf predict: {len(rows):,} rows of {name}")
        cli_s = timed([sys.executable, "-m", "textclf.cli", "predict", folder, str(source), f"{tmp}/cli.parquet",
                          f"predict.batch_size={args.batch_size}"])
        log("PredictFlow")
        flow_s = timed([sys.executable, "flows/predict_flow.py", "--no-pylint", "--config-value", "config",
                           f"predict.shard_rows={shard_rows} predict.batch_size={args.batch_size}", "run",
                           "--model", folder, "--source", str(source), "--output", f"{tmp}/flow"],
                          env={"METAFLOW_DATASTORE_SYSROOT_LOCAL": f"{tmp}/metaflow"})
        manifest = json.loads(Path(tmp, "flow", "_SUCCESS").read_text())
        log("pipeline")
        pipe_s = timed([sys.executable, "-c", PIPELINE, folder, str(source), f"{tmp}/pipe.parquet",
                           str(args.batch_size)])
        ours, theirs = pd.read_parquet(f"{tmp}/cli.parquet"), pd.read_parquet(f"{tmp}/pipe.parquet")
        flow = pd.concat([pd.read_parquet(Path(tmp, "flow", part)) for part in manifest["parts"]])
    per_s = {side: round(len(rows) / s, 1) for side, s in
             [("textclf_predict", cli_s), ("predict_flow", flow_s), ("pipeline", pipe_s)]}
    emit({
        "bench": "predict", "model": model, "rows": len(rows), "source": name, "batch_size": args.batch_size,
        "textclf_predict": {"rows_per_s": per_s["textclf_predict"], "seconds": round(cli_s, 1),
                            "accuracy": accuracy(ours["label"], gold)},
        "predict_flow": {"rows_per_s": per_s["predict_flow"], "seconds": round(flow_s, 1),
                         "shards": manifest["shards"], "rows_per_s_from_start_step": manifest["rows_per_s"],
                         "accuracy": accuracy(flow["label"], gold)},
        "pipeline": {"rows_per_s": per_s["pipeline"], "seconds": round(pipe_s, 1), "accuracy": accuracy(theirs["label"], gold)},
        "ratio": ratio(per_s["textclf_predict"], per_s["pipeline"]),
        "ratio_flow": ratio(per_s["predict_flow"], per_s["pipeline"]),
        "label_agreement": round(float((ours["label"].to_numpy() == theirs["label"].to_numpy()).mean()), 4),
        "targets": {"ratio": 1.0, "label_agreement": 1.0},
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
