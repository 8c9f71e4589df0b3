"""MLflow tracking of a TrainFlow run: the run itself (params = resolved config, tags = code and
origin), the data version, the training record and the test metrics with the rendered reports."""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from textclf.config import PROJECT_ROOT, RegistryConfig
from textclf.storage import is_remote
from textclf.training.tracking import training_metrics


def client(rcfg: RegistryConfig):
    """An MlflowClient on the configured store, with the experiment created at its artifact root."""
    return experiment(rcfg)[0]


def experiment(rcfg: RegistryConfig) -> tuple[Any, str]:
    """(MlflowClient, id of the configured experiment), creating the experiment on first use; a
    task beside this one (a TuneFlow trial) may create it at the same moment."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    c = MlflowClient(rcfg.tracking_uri, registry_uri=rcfg.tracking_uri)
    found = c.get_experiment_by_name(rcfg.experiment)
    if found is not None:
        return c, found.experiment_id
    # A server with --artifacts-destination proxies artifacts: it picks the location itself.
    location = None if rcfg.tracking_uri.startswith("http") else _artifact_location(rcfg.artifact_location)
    try:
        return c, c.create_experiment(rcfg.experiment, artifact_location=location)
    except MlflowException:
        return c, c.get_experiment_by_name(rcfg.experiment).experiment_id


def registry_config(cfg: dict[str, Any]) -> RegistryConfig:
    """The `registry` section of a resolved config dict (a flow's `cfg` artifact)."""
    return RegistryConfig(**cfg["registry"])


def _artifact_location(location: str) -> str:
    return location if is_remote(location) else Path(location).resolve().as_uri()


def git_state(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """The code version: commit and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    try:
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def start_run(cfg: dict[str, Any], pathspec: str, requested_by: str = "") -> str:
    """Open the MLflow run of a TrainFlow run: params = resolved config, tags = code and origin
    (the @project branch, and the MonitorFlow run that asked for it, if one did)."""
    from mlflow.entities import Param

    c, experiment_id = experiment(registry_config(cfg))
    data = cfg["data"]
    tags = {"metaflow.pathspec": pathspec, "metaflow.branch": cfg.get("branch", ""), "requested_by": requested_by,
            "backbone": cfg["model"]["backbone"], **git_state(),
            "data.source": str(data["source"] or {s: data[s] for s in ("train", "val", "test") if data[s]})}
    run_id = c.create_run(experiment_id, run_name=pathspec.replace("/", "-"), tags=tags).info.run_id
    params = [Param(k, v[:6000]) for k, v in _flat(cfg).items()]
    for i in range(0, len(params), 100):
        c.log_batch(run_id, params=params[i:i + 100])
    c.log_dict(run_id, cfg, "config.json")
    return run_id


def end_run(cfg: dict[str, Any], run_id: str, status: str) -> None:
    """Close a flow's MLflow run as FAILED or KILLED, so a run that stopped is not left RUNNING."""
    client(registry_config(cfg)).set_terminated(run_id, status)


def end_stopped_run(run: Any = None) -> None:
    """TrainFlow's exit hook on error (`@exit_hook(on_error=[...])`, given the Metaflow run): its
    MLflow run, if still RUNNING, ends FAILED when a step raised and KILLED when none did (the run
    was interrupted). Without a run (no metadata to find it by) there is nothing to do."""
    if run is None or "start" not in run or "mlflow_run_id" not in run["start"].task:
        return
    start = run["start"].task
    cfg, run_id = start["cfg"].data, start["mlflow_run_id"].data
    if client(registry_config(cfg)).get_run(run_id).info.status != "RUNNING":
        return
    raised = any(task.exception is not None for step in run for task in step)
    end_run(cfg, run_id, "FAILED" if raised else "KILLED")
    print(f"MLflow run {run_id}: {'FAILED' if raised else 'KILLED'}")


def tag_data(cfg: dict[str, Any], run_id: str, manifest: dict[str, Any]) -> None:
    """Record the data version the model was trained on (content hash, DVC revision)."""
    from mlflow.entities import RunTag

    c = client(registry_config(cfg))
    fp = manifest["fingerprint"]
    tags = [RunTag("data.fingerprint", fp["sha256"])]
    dvc = {e["dvc_rev"]: str(e.get("dvc_md5")) for e in fp["sources"].values() if "dvc_rev" in e}
    if dvc:
        tags += [RunTag("data.dvc_rev", ",".join(dvc)), RunTag("data.dvc_md5", ",".join(dvc.values()))]
    c.log_batch(run_id, tags=tags)
    c.log_dict(run_id, manifest, "data/manifest.json")


def log_training(cfg: dict[str, Any], run_id: str, training: dict[str, Any]) -> None:
    """Throughput, the calibration fitted on val, and the training record; epoch metrics too if
    rank 0 could not log them live."""
    from mlflow.entities import Metric

    c = client(registry_config(cfg))
    now = int(time.time() * 1000)
    numbers = ("train_samples_per_s", "best_epoch", "best_val", "temperature", "val_ece_uncalibrated", "val_ece")
    metrics = [Metric(k, float(training[k]), now, int(training["steps"])) for k in numbers if training.get(k) is not None]
    if not c.get_metric_history(run_id, "epoch"):
        metrics += [Metric(k, v, now, int(r["step"])) for r in training["history"]
                    for k, v in training_metrics(r).items()]
    for i in range(0, len(metrics), 500):
        c.log_batch(run_id, metrics=metrics[i:i + 500])
    c.log_dict(run_id, training, "training.json")


def log_evaluation(cfg: dict[str, Any], run_id: str, test_metrics: dict[str, Any],
                   reports: dict[str, str] | None) -> None:
    """Test metrics (`test_*`), metrics.json, and the rendered notebooks under `reports/`."""
    from mlflow.entities import Metric

    c = client(registry_config(cfg))
    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(f"test_{k}", float(v), now, 0) for k, v in test_metrics.items()
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)])
    c.log_dict(run_id, test_metrics, "metrics.json")
    for uri in (reports or {}).values():
        _log_file(c, run_id, uri, "reports")


def _log_file(c, run_id: str, uri: str, artifact_path: str) -> None:
    if not is_remote(uri):
        c.log_artifact(run_id, uri, artifact_path)
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="textclf-") as tmp:
        local = Path(tmp, uri.rstrip("/").rsplit("/", 1)[-1])
        with fsspec.open(uri, "rb") as src:
            local.write_bytes(src.read())
        c.log_artifact(run_id, str(local), artifact_path)
