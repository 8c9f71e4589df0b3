"""MLflow: one tracked run per TrainFlow run, the model registry with its champion gate, and
the one way to load a model by any name (alias, version, Metaflow run, folder).

The gate scores the candidate and the current `champion` on the same rows (the candidate's test
split) and moves `champion` only when the candidate is better by `registry.gate_margin` on
`registry.gate_metric`; otherwise the candidate is tagged `challenger`. Every decision is recorded
on the model version (tags), in the MLflow run (params, metrics) and printed.

The model is logged as the plain files of its `save_pretrained` folder: no pickled Python object,
no `mlflow.transformers` flavour (which imports torchvision and looks up model cards online).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from textclf.config import PROJECT_ROOT, RegistryConfig
from textclf.errors import TextclfError
from textclf.storage import download_dir, is_remote

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file is noise in step logs

CHAMPION, CHALLENGER = "champion", "challenger"
CACHE = Path(os.environ.get("TEXTCLF_CACHE", Path.home() / ".cache" / "textclf")) / "registry"


class ModelNotFound(TextclfError):
    headline = "Model not found"


def client(rcfg: RegistryConfig):
    """An MlflowClient on the configured store, with the experiment created at its artifact root."""
    from mlflow import MlflowClient

    c = MlflowClient(rcfg.tracking_uri, registry_uri=rcfg.tracking_uri)
    if c.get_experiment_by_name(rcfg.experiment) is None:
        # A server with --artifacts-destination proxies artifacts: it picks the location itself.
        location = None if rcfg.tracking_uri.startswith("http") else _artifact_location(rcfg.artifact_location)
        c.create_experiment(rcfg.experiment, artifact_location=location)
    return c


def _registry(cfg: dict[str, Any]) -> RegistryConfig:
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


# --------------------------------------------------------------------------- tracking

def start_run(cfg: dict[str, Any], pathspec: str) -> str:
    """Open the MLflow run of a TrainFlow run: params = resolved config, tags = code and origin."""
    from mlflow.entities import Param

    rcfg = _registry(cfg)
    c = client(rcfg)
    experiment = c.get_experiment_by_name(rcfg.experiment).experiment_id
    data = cfg["data"]
    tags = {"metaflow.pathspec": pathspec, "backbone": cfg["model"]["backbone"], **git_state(),
            "data.source": str(data["source"] or {s: data[s] for s in ("train", "val", "test") if data[s]})}
    run_id = c.create_run(experiment, run_name=pathspec.replace("/", "-"), tags=tags).info.run_id
    params = [Param(k, v[:6000]) for k, v in _flat(cfg).items()]
    for i in range(0, len(params), 100):
        c.log_batch(run_id, params=params[i:i + 100])
    c.log_dict(run_id, cfg, "config.json")
    return run_id


def tag_data(cfg: dict[str, Any], run_id: str, manifest: dict[str, Any]) -> None:
    """Record the data version the model was trained on (content hash, DVC revision)."""
    from mlflow.entities import RunTag

    c = client(_registry(cfg))
    fp = manifest["fingerprint"]
    tags = [RunTag("data.fingerprint", fp["sha256"])]
    dvc = {e["dvc_rev"]: str(e.get("dvc_md5")) for e in fp["sources"].values() if "dvc_rev" in e}
    if dvc:
        tags += [RunTag("data.dvc_rev", ",".join(dvc)), RunTag("data.dvc_md5", ",".join(dvc.values()))]
    c.log_batch(run_id, tags=tags)
    c.log_dict(run_id, manifest, "data/manifest.json")


def training_metrics(record: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names for one training log record (see `textclf.train.fit`): per optimizer
    step `train_loss` and `lr`; per epoch `epoch_train_loss`, `samples_per_s` and `val_*`."""
    if record.get("kind") == "step":
        return {"train_loss": float(record["loss"]), "lr": float(record["lr"])}
    return {("epoch_train_loss" if k == "train_loss" else k): float(v) for k, v in record.items()
            if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class MetricLogger:
    """Rank 0's live training curves into the flow's MLflow run. A tracking outage costs the
    live curves (the JSONL log and the register step's backfill remain), never the training."""

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


def log_training(cfg: dict[str, Any], run_id: str, training: dict[str, Any]) -> None:
    """Throughput and the training record; epoch metrics too if rank 0 could not log them live."""
    from mlflow.entities import Metric

    c = client(_registry(cfg))
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(training[k]), now, int(training["steps"]))
               for k in ("train_samples_per_s", "best_epoch", "best_val") if training.get(k) is not None]
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

    c = client(_registry(cfg))
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


# --------------------------------------------------------------------------- registry and gate

def gate_score(model_path: str | Path, test_shard: str, id2label: dict[Any, str], metric: str,
               multi_label: bool, who: str = "the candidate") -> float:
    """`metric` of a model on a test split, from the raw texts with the model's own tokenizer,
    with gold labels matched by name (the champion's label ids need not match the candidate's).
    A model of the other kind (single- vs multi-label), or one that knows none of the data's labels,
    solves another task: no score (it would be 0 and always lose), a clear error."""
    import numpy as np

    from textclf.evaluation import read_split
    from textclf.metrics import quick_metrics
    from textclf.predict import Predictor

    predictor = Predictor(model_path)
    if predictor.multi_label != multi_label or not set(predictor.labels) & set(id2label.values()):
        kind = {True: "multi-label", False: "single-label"}
        raise TextclfError(
            f"{who} is a {kind[predictor.multi_label]} classifier over {predictor.labels}, but this run's data is "
            f"{kind[multi_label]} over {sorted(id2label.values())}: the gate cannot compare them. Register this "
            f"run under a name of its own, e.g. registry.model_name=textclf-{kind[multi_label]}")
    frame = read_split(test_shard, ["text", "label"])
    probs = predictor.predict_proba(frame["text"].tolist())
    index = {name: i for i, name in enumerate(predictor.labels)}
    names = {int(k): v for k, v in id2label.items()}
    unknown = len(index)  # a label this model cannot predict: a column it never scores above zero
    to_model = {k: index.get(v, unknown) for k, v in names.items()}
    if unknown in to_model.values():
        probs = np.hstack([probs, np.zeros((len(probs), 1), probs.dtype)])
    truth = [[to_model[int(i)] for i in row] for row in frame["label"]] if predictor.multi_label \
        else np.asarray([to_model[int(i)] for i in frame["label"]])
    scores = quick_metrics(truth, probs, predictor.multi_label, predictor.threshold)
    if metric not in scores:
        raise TextclfError(f"registry.gate_metric={metric!r} is not one of {sorted(scores)} for this model")
    return scores[metric]


def _current_champion(c, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register(cfg: dict[str, Any], run_id: str, model_uri: str, manifest: dict[str, Any], pathspec: str) -> dict[str, Any]:
    """Log the model folder, create a model version, and run the champion / challenger gate."""
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    rcfg = _registry(cfg)
    c = client(rcfg)
    from textclf.metrics import resolve_metric

    metric = resolve_metric(rcfg.gate_metric, manifest["multi_label"])
    margin, test_shard = rcfg.gate_margin, manifest["shards"]["test"]
    folder = download_dir(model_uri, CACHE / "folders")
    score = partial(gate_score, test_shard=test_shard, id2label=manifest["id2label"], metric=metric,
                    multi_label=manifest["multi_label"])
    candidate = score(folder)
    champion = _current_champion(c, rcfg.model_name)
    # Both scores before anything is registered: a champion that cannot be compared leaves no version behind.
    champion_score = None if champion is None else score(
        _download(champion, rcfg.tracking_uri), who=f"{rcfg.model_name} v{champion.version} (the champion)")
    c.log_artifacts(run_id, str(folder), "model")
    try:
        c.get_registered_model(rcfg.model_name)
    except MlflowException:
        c.create_registered_model(rcfg.model_name, description="textclf text classifier (textclf.registry)")
    version = str(c.create_model_version(rcfg.model_name, f"{c.get_run(run_id).info.artifact_uri}/model",
                                         run_id=run_id, tags={"metaflow.pathspec": pathspec}).version)
    previous = str(champion.version) if champion else None  # sqlite stores say 1, servers "1"
    if champion is None:
        promote, reason = True, "no champion yet"
    else:
        promote = candidate > champion_score + margin
        reason = (f"candidate {metric} {candidate:.4f} vs champion v{champion.version} {champion_score:.4f} "
                  f"on the candidate's test split: {'better' if promote else 'not better'} by more than "
                  f"the margin {margin}")
    alias = CHAMPION if promote else CHALLENGER
    c.set_registered_model_alias(rcfg.model_name, alias, version)
    tags = {"gate.decision": alias, "gate.reason": reason, "gate.metric": metric, "gate.margin": str(margin),
            "gate.candidate": f"{candidate:.6f}",
            "gate.champion": "" if champion_score is None else f"{champion_score:.6f}",
            "gate.champion_version": previous or ""}
    for k, v in tags.items():
        c.set_model_version_tag(rcfg.model_name, version, k, str(v))
    now = int(time.time() * 1000)
    metrics = [Metric(f"gate_candidate_{metric}", candidate, now, 0)]
    if champion_score is not None:
        metrics.append(Metric(f"gate_champion_{metric}", champion_score, now, 0))
    c.log_batch(run_id, metrics=metrics, params=[Param("gate.decision", alias), Param("gate.margin", str(margin))])
    c.set_tag(run_id, "registry.version", f"{rcfg.model_name}/{version}")
    c.set_terminated(run_id)
    print(f"registry: {rcfg.model_name} v{version} -> {alias} ({reason})", flush=True)
    return {"model_name": rcfg.model_name, "version": version, "alias": alias, "metric": metric,
            "candidate": candidate, "champion": champion_score, "previous_champion": previous, "reason": reason}


# --------------------------------------------------------------------------- loading

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


def _download(mv, tracking_uri: str) -> Path:
    """A local copy of a model version, cached by its artifact URI (which holds the MLflow run id,
    so two stores that both have `textclf` v1 never share a cache entry)."""
    import mlflow

    dest = CACHE / "versions" / hashlib.sha256(mv.source.encode()).hexdigest()[:24]
    if not (dest / "config.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp), tracking_uri=tracking_uri)
            shutil.rmtree(dest, ignore_errors=True)
            (tmp / "model").rename(dest)  # download_artifacts keeps the last path part
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

    from textclf.runs import find_run, run_outputs

    try:
        out = run_outputs(uri)
        run = find_run(uri)
    except MetaflowNotFound as exc:
        raise ModelNotFound(f"{uri}: no such TrainFlow run with a trained model ({exc})") from None
    tags = dict(t.split(":", 1) for t in run.user_tags if ":" in t)
    finished = run["join_train"].task.finished_at
    lineage = {"metaflow_run": out.pathspec, "mlflow_run": tags.get("mlflow_run"),
               "data_fingerprint": out.manifest["fingerprint"]["sha256"]}
    metrics = run["evaluate"].task.data.test_metrics if "evaluate" in run and run["evaluate"].task.successful else {}
    path = str(download_dir(out.model_uri, CACHE / "folders")) if download else out.model_uri
    return ResolvedModel(path=path, uri=uri, run_id=out.pathspec,
                         version=tags.get("model_version"), metrics=dict(metrics), lineage=lineage,
                         created=finished.replace(tzinfo=timezone.utc).isoformat() if finished else None)


def _resolve_registered(uri: str, tracking_uri: str, download: bool) -> ResolvedModel:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    c = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    name, alias, version = _parse_models_uri(uri[len("models:/"):])
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelNotFound(f"{uri}: not in the registry at {tracking_uri} ({exc.message.splitlines()[0]})") from None
    run = c.get_run(mv.run_id)
    tags = run.data.tags
    lineage = {"mlflow_run": mv.run_id, "metaflow_run": tags.get("metaflow.pathspec"),
               "data_source": tags.get("data.source"), "data_fingerprint": tags.get("data.fingerprint"),
               "dvc_rev": tags.get("data.dvc_rev"), "git_commit": tags.get("git_commit"),
               "git_dirty": tags.get("git_dirty"), "backbone": tags.get("backbone"),
               "gate": mv.tags.get("gate.reason")}
    metrics = {k[len("test_"):]: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    path = str(_download(mv, tracking_uri)) if download else mv.source
    return ResolvedModel(path=path, uri=uri, name=name, version=str(mv.version),
                         alias=alias, run_id=lineage["metaflow_run"], metrics=metrics, lineage=lineage,
                         created=datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat())


def _parse_models_uri(body: str) -> tuple[str, str | None, str | None]:
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


def load(uri: str):
    """Tokenizer, model and label map of any model URI (what serving and notebooks need)."""
    from textclf.predict import Predictor

    resolved = resolve_model(uri)
    predictor = Predictor(resolved.path)
    return predictor.tokenizer, predictor.model, predictor.id2label, resolved
