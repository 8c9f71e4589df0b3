"""The one way to find a model by any name: `models:/<name>@<alias>`, `models:/<name>/<version>`,
a TrainFlow run id, or a folder (local or gs://); with what it is and where it came from."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textclf.errors import TextclfError
from textclf.registry.mlflow_model import hf_folder
from textclf.storage import download_dir

CACHE = Path(os.environ.get("TEXTCLF_CACHE", Path.home() / ".cache" / "textclf")) / "registry"


class ModelNotFound(TextclfError):
    headline = "Model not found"


@dataclass
class ResolvedModel:
    path: str  # a local folder: save_pretrained weights + tokenizer
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None  # the Metaflow pathspec that trained it
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    created: str | None = None  # ISO time the model was made

    @property
    def pinned(self) -> str:
        """A URI that keeps naming this very model: an alias's version now, anything else as given."""
        return f"models:/{self.name}/{self.version}" if self.name else self.uri


def download_version(mv, tracking_uri: str) -> Path:
    """A local copy of a model version's Hugging Face folder (from inside its MLflow Model, or
    the artifact itself for a version registered as the bare folder), cached by its artifact URI
    (which holds the MLflow run id, so two stores that both have `textclf` v1 never share a cache entry)."""
    import mlflow

    dest = CACHE / "versions" / hashlib.sha256(mv.source.encode()).hexdigest()[:24]
    if not (dest / "config.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp), tracking_uri=tracking_uri)
            shutil.rmtree(dest, ignore_errors=True)
            hf_folder(tmp / "model").rename(dest)  # download_artifacts keeps the last path part
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the project's configured store."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    from textclf.config import compose

    return compose().registry.tracking_uri


def resolve_model(uri: str, tracking_uri: str | None = None, download: bool = True) -> ResolvedModel:
    """`models:/<name>@<alias>`, `models:/<name>/<version>`, `TrainFlow/<id>` or a folder (local or gs://).
    `download=False` (lineage only) leaves a registered model's `path` as its artifact URI."""
    if uri.startswith("models:/"):
        return _resolve_registered(uri, tracking_uri or default_tracking_uri(), download)
    if uri.startswith("TrainFlow/") or uri.isdigit():
        return _resolve_run(uri, download)
    path = download_dir(uri, CACHE / "folders")
    if not (path / "config.json").exists():
        raise ModelNotFound(f"{uri}: not a model folder (no config.json), a models:/ URI or a TrainFlow run id")
    return ResolvedModel(path=str(path), uri=uri, created=datetime.fromtimestamp(
        (path / "config.json").stat().st_mtime, timezone.utc).isoformat())


def _resolve_run(uri: str, download: bool) -> ResolvedModel:
    from metaflow.exception import MetaflowNotFound

    from textclf.registry.runs import find_run, run_outputs

    try:
        out = run_outputs(uri)
        run = find_run(uri)
    except MetaflowNotFound as exc:
        raise ModelNotFound(f"{uri}: no such TrainFlow run with a trained model ({exc})") from None
    registered = run["register"].task if "register" in run else None
    registration = registered.data.registration if registered and registered.successful else {}
    finished = run["join_train"].task.finished_at
    lineage = {"metaflow_run": out.pathspec, "mlflow_run": run["start"].task.data.mlflow_run_id,
               "data_fingerprint": out.manifest["fingerprint"]["sha256"]}
    metrics = run["evaluate"].task.data.test_metrics if "evaluate" in run and run["evaluate"].task.successful else {}
    path = str(download_dir(out.model_uri, CACHE / "folders")) if download else out.model_uri
    return ResolvedModel(path=path, uri=uri, run_id=out.pathspec,
                         version=registration.get("version"), metrics=dict(metrics), lineage=lineage,
                         created=finished.replace(tzinfo=timezone.utc).isoformat() if finished else None)


def _resolve_registered(uri: str, tracking_uri: str, download: bool) -> ResolvedModel:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    c = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name, alias, version = parse_models_uri(uri[len("models:/"):])
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelNotFound(f"{uri}: not in the registry at {tracking_uri} ({exc.message.splitlines()[0]})") from None
    run = c.get_run(mv.run_id)
    tags = run.data.tags
    lineage = {"mlflow_run": mv.run_id, "metaflow_run": tags.get("metaflow.pathspec"),
               "branch": tags.get("metaflow.branch"), "requested_by": tags.get("requested_by") or None,
               "data_source": tags.get("data.source"), "data_fingerprint": tags.get("data.fingerprint"),
               "dvc_rev": tags.get("data.dvc_rev"), "git_commit": tags.get("git_commit"),
               "git_dirty": tags.get("git_dirty"), "backbone": tags.get("backbone"),
               "gate": mv.tags.get("gate.reason")}
    metrics = test_metrics(run)
    path = str(download_version(mv, tracking_uri)) if download else mv.source
    return ResolvedModel(path=path, uri=uri, name=name, version=str(mv.version),
                         alias=alias, run_id=lineage["metaflow_run"], metrics=metrics, lineage=lineage,
                         created=datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat())


def test_metrics(run) -> dict[str, float]:
    """An MLflow run's test metrics, without their `test_` prefix."""
    return {k[len("test_"):]: v for k, v in run.data.metrics.items() if k.startswith("test_")}


def parse_models_uri(body: str) -> tuple[str, str | None, str | None]:
    """(name, alias, version) of the part after `models:/`."""
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, alias, None
    name, _, version = body.partition("/")
    if not name or not version.isdigit():
        raise ModelNotFound(f"models:/{body}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return name, None, version


def run_record(mlflow_run_id: str, tracking_uri: str) -> dict[str, Any]:
    """The resolved config and the data manifest stored with an MLflow run."""
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="textclf-") as tmp:
        config = json.loads(Path(c.download_artifacts(mlflow_run_id, "config.json", tmp)).read_text())
        manifest = json.loads(Path(c.download_artifacts(mlflow_run_id, "data/manifest.json", tmp)).read_text())
    return {"config": config, "manifest": manifest}
