"""Rank 0's record of training: one JSONL line per record, and live curves in the flow's MLflow run.

A tracking outage costs the live curves (the JSONL log and the register step's backfill
remain), never the training.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from textclf.storage import exists, get_file, put_file


def training_metrics(record: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names for one log record: per optimizer step `train_loss` and `lr`; per
    epoch `epoch_train_loss`, `samples_per_s` and `val_*`."""
    if record.get("kind") == "step":
        return {"train_loss": float(record["loss"]), "lr": float(record["lr"])}
    return {("epoch_train_loss" if k == "train_loss" else k): float(v) for k, v in record.items()
            if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class MetricLogger:
    """Live training curves into one MLflow run."""

    def __init__(self, tracking_uri: str, run_id: str):
        from mlflow import MlflowClient

        self.client, self.run_id = MlflowClient(tracking_uri), run_id

    def log(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        if self.client is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, int(record["step"])) for k, v in training_metrics(record).items()]
        try:
            self.client.log_batch(self.run_id, metrics=metrics)
        except Exception as exc:  # any transport or server error: report once, keep training
            print(f"warning: MLflow run {self.run_id} unreachable, live metrics stop here: {exc}", flush=True)
            self.client = None


class RunLog:
    """What rank 0 writes about training; other ranks hold a silent one. With a `mirror` URI the
    log is copied there at every checkpoint (`sync`), and a resumed run on a fresh machine
    continues the mirrored log rather than starting a new one."""

    def __init__(self, path: Path, main: bool, tracking_uri: str | None = None, mlflow_run_id: str | None = None,
                 mirror: str | None = None):
        self.path, self.main, self.mirror = path, main, mirror
        self.tracker = MetricLogger(tracking_uri, mlflow_run_id) if main and mlflow_run_id else None
        if main:
            path.parent.mkdir(parents=True, exist_ok=True)
            if mirror and not path.exists() and exists(mirror):
                get_file(mirror, path)

    def sync(self) -> None:
        if self.main and self.mirror and self.path.exists():
            put_file(self.path, self.mirror)

    def write(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tracker is not None:
            self.tracker.log(record)
