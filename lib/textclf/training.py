"""The train step as one library call: write the spec, run torchrun, read the result back."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from textclf.config import TextclfConfig, to_dict
from textclf.launch import default_nproc, run_torchrun
from textclf.storage import is_remote, join


def run_paths(cfg: TextclfConfig, flow: str, run_key: str) -> dict[str, str]:
    """Where one run's big artifacts live: `<artifact_root>/<flow>/<run>/...`, never shared."""
    root = join(cfg.artifact_root, flow, run_key)
    local = Path(tempfile.gettempdir(), "textclf", flow, run_key) if is_remote(root) else Path(root)
    return {"root": root, "data": join(root, "data"), "model": join(root, "model"),
            "checkpoint_dir": str(local / "checkpoints"), "log_dir": str(local / "logs"), "spec": str(local / "spec.json")}


def train_model(cfg: TextclfConfig, manifest: dict[str, Any], paths: dict[str, str], nnodes: int = 1,
                node_rank: int = 0, master_addr: str | None = None, mlflow_run_id: str | None = None) -> dict[str, Any]:
    """Fine-tune on the manifest's shards with torchrun; returns the rank-0 training record.
    With `mlflow_run_id`, rank 0 logs its step and epoch metrics into that MLflow run."""
    spec = {"config": to_dict(cfg), "manifest": manifest, "output": paths["model"],
            "checkpoint_dir": paths["checkpoint_dir"], "log_dir": paths["log_dir"], "mlflow_run_id": mlflow_run_id}
    Path(paths["spec"]).parent.mkdir(parents=True, exist_ok=True)
    Path(paths["spec"]).write_text(json.dumps(spec, indent=2))
    nproc = default_nproc(cfg.train.nproc_per_node)
    rendezvous = {"nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr} if nnodes > 1 else {}
    run_torchrun(paths["spec"], nproc, cfg.train.threads_per_proc, **rendezvous)
    if node_rank != 0:
        return {}
    record = Path(paths["checkpoint_dir"]) / "model" / "training.json" if is_remote(paths["model"]) \
        else Path(paths["model"]) / "training.json"
    return json.loads(record.read_text())
