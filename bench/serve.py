"""Serving speed: textclf's Predictor (PyTorch and ONNX int8) vs `transformers.pipeline`, plus the
latency of one text through the running HTTP API.

    python bench/serve.py --model .textclf/bench/train/textclf/flow/model   # what bench/train.py saved (the default)
    python bench/serve.py --model TrainFlow/123 --rows 2000 --threads 2
    python bench/serve.py --rows 100 --requests 0 --skip-default-pipeline    # the tiny size tests run

Throughput: every SST-2 test sentence (repeated up to --rows), end to end (tokenize, batch, model,
probabilities), the same texts and thread budget on both sides; accuracy against SST-2 labels.
The baseline gets the same batch size (`pipeline(texts, batch_size=...)`); its default
(one text per forward pass) is reported beside it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common import ROOT, Timer, emit, gold_labels, log, machine, offline, ratio, require_sst2, sst2, stdout_to_stderr

DEFAULT_MODEL = ROOT / ".textclf" / "bench" / "train" / "textclf" / "flow" / "model"  # bench/train.py's `flow`


def throughput(predict: Callable[[list[str]], list[str]], texts: list[str], truth: list[str]) -> dict[str, Any]:
    predict(texts[:32])  # warm-up: first-call allocations, lazy graph optimisation
    with Timer() as t:
        labels = predict(texts)
    return {"texts_per_s": round(len(texts) / t.seconds, 1), "seconds": round(t.seconds, 2),
            "accuracy": round(float(np.mean([p == y for p, y in zip(labels, truth)])), 4)}


def textclf_side(folder: Path, variant: str, batch_size: int) -> Callable[[list[str]], list[str]]:
    from textclf.model.predictor import Predictor

    predictor = Predictor(folder, batch_size=batch_size, device="cpu", variant=variant)
    return lambda texts: predictor.decide(predictor.predict_proba(texts))


def pipeline_side(folder: Path, batch_size: int) -> Callable[[list[str]], list[str]]:
    from transformers import pipeline

    import textclf.model.network  # noqa: F401  (the model type must be registered for the Auto classes)

    pipe = pipeline("text-classification", model=str(folder), device=-1)
    return lambda texts: [r["label"] for r in pipe(texts, batch_size=batch_size, truncation=True)]


def http_latency(model: str, variant: str, texts: list[str], requests: int) -> dict[str, Any]:
    """p50/p99 of one-text POST /predict, one request at a time, against `textclf serve`."""
    import importlib.util
    from dataclasses import fields

    import httpx

    from textclf.config import ServeConfig

    if importlib.util.find_spec("textclf.serve.app") is None:
        return {"skipped": "textclf.serve.app is not there yet (the serving issue)"}
    if "variant" not in {f.name for f in fields(ServeConfig)}:
        variant = "torch"  # the server cannot be told to load another variant yet
    extra = [] if variant == "torch" else [f"serve.variant={variant}"]
    from textclf.ports import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "textclf.cli", "serve", "--model", model, "--host", "127.0.0.1",
           "--port", str(port), "--poll-seconds", "0", *extra]
    server_log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 180
            while True:
                if server.poll() is not None:
                    server_log.seek(0)
                    return {"skipped": f"server exited ({server.returncode}): {server_log.read()[-800:]}"}
                try:
                    if client.post("/predict", json={"texts": texts[0]}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    return {"skipped": "server did not answer within 180 s"}
                time.sleep(0.5)
            for text in texts[:20]:  # warm-up
                client.post("/predict", json={"texts": text}).raise_for_status()
            millis = []
            for i in range(requests):
                start = time.perf_counter()
                client.post("/predict", json={"texts": texts[i % len(texts)]}).raise_for_status()
                millis.append((time.perf_counter() - start) * 1000)
    finally:
        server.terminate()
        server.wait(30)
        server_log.close()
    q = statistics.quantiles(millis, n=100, method="inclusive")
    return {"variant": variant, "requests": requests, "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "mean_ms": round(statistics.fmean(millis), 2)}


def ensure_onnx(folder: Path) -> None:
    from textclf.evaluation.parity import export_with_parity
    from textclf.model.onnx_runtime import onnx_path

    if not onnx_path(folder, "onnx-int8").exists():
        log(f"exporting {folder} to ONNX (no onnx/ folder yet)")
        export_with_parity(folder)


def measure_all(folder: Path, texts: list[str], truth: list[str], args: argparse.Namespace):
    """Throughput of every side on the same texts, then HTTP latency of the fastest path."""
    sides = {}
    for name, make in [("textclf_torch", lambda: textclf_side(folder, "torch", args.batch_size)),
                       ("textclf_onnx_int8", lambda: textclf_side(folder, "onnx-int8", args.batch_size)),
                       ("pipeline", lambda: pipeline_side(folder, args.batch_size)),
                       *([] if args.skip_default_pipeline else [("pipeline_batch1", lambda: pipeline_side(folder, 1))])]:
        log(f"throughput: {name}")
        n = args.batch1_rows if name == "pipeline_batch1" else len(texts)  # one text per pass: slow, a sample
        sides[name] = throughput(make(), texts[:n], truth[:n])
    latency = http_latency(str(folder), "onnx-int8", texts, args.requests) if args.requests \
        else {"skipped": "--requests 0"}
    return sides, latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model folder or TrainFlow run id (SST-2 trained)")
    parser.add_argument("--rows", type=int, default=0, help="texts to score (SST-2 test repeated); 0: the 872 once")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / onnxruntime threads")
    parser.add_argument("--requests", type=int, default=500, help="HTTP requests for the latency figures; 0: none")
    parser.add_argument("--skip-default-pipeline", action="store_true", help="skip pipeline() at its default batch 1")
    parser.add_argument("--batch1-rows", type=int, default=200, help="texts for pipeline() at batch 1 (it is slow)")
    args = parser.parse_args()
    offline()
    require_sst2("serve")
    import torch

    from textclf.registry.resolution import resolve_model
    from textclf.storage import is_remote

    torch.set_num_threads(args.threads)
    folder_uri = resolve_model(args.model).path
    if is_remote(folder_uri) or not Path(folder_uri, "config.json").exists():
        emit({"bench": "serve", "skipped": f"no local model folder at {folder_uri}: run bench/train.py or pass --model"})
        return
    folder = Path(folder_uri)
    test = sst2("test")
    reps = max(1, -(-args.rows // len(test))) if args.rows else 1
    texts = (test["text"].tolist() * reps)[:args.rows or len(test)]
    truth = gold_labels(folder, (test["label"].tolist() * reps)[:len(texts)])

    with stdout_to_stderr():
        ensure_onnx(folder)
        sides, latency = measure_all(folder, texts, truth, args)
    best = "textclf_onnx_int8"
    emit({
        "bench": "serve", "model": str(folder), "texts": len(texts), "batch_size": args.batch_size,
        **sides,
        "ratio": ratio(sides[best]["texts_per_s"], sides["pipeline"]["texts_per_s"]),
        "ratio_torch": ratio(sides["textclf_torch"]["texts_per_s"], sides["pipeline"]["texts_per_s"]),
        "ratio_vs_pipeline_batch1": ratio(sides[best]["texts_per_s"], sides["pipeline_batch1"]["texts_per_s"])
        if "pipeline_batch1" in sides else None,
        "accuracy_delta_points": round(100 * (sides[best]["accuracy"] - sides["pipeline"]["accuracy"]), 2),
        "http": latency,
        "targets": {"ratio": 4, "max_accuracy_loss_points": 0.5, "p50_ms": 10, "p99_ms": 25},  # issue 21, raised
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
