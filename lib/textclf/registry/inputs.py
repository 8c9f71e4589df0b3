"""What the evaluation notebooks evaluate: a model plus a data folder, or a TrainFlow run id,
resolved to a model, a test split, the run's manifest and its training log.

Given a model and a data folder, nothing is looked up in Metaflow: that is how TrainFlow's
evaluate step calls the notebooks, so its pods need no Metaflow metadata service.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textclf.errors import TextclfError
from textclf.registry.resolution import resolve_model
from textclf.registry.runs import run_outputs
from textclf.storage import exists, join, read_json


@dataclass
class EvalInputs:
    """Where the model and the data are, and (for a run) where its training log is."""
    model_uri: str
    test_shard: str
    data_uri: str | None = None  # a preprocessed data folder (manifest.json + shards/), if known
    run_id: str | None = None
    log_path: str | None = None  # the train step's metrics.jsonl (a path or URI), if known
    manifest: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""  # what a report calls the model: the name it was asked by, its version and run


def _name(value: Any) -> str | None:
    """Papermill passes `-p run_id 123` as an int and `-p x 1.5` as a float: names are strings."""
    return None if value is None or value == "" else str(value)


def resolve_inputs(run_id: str | None = None, model_uri: str | None = None, data_uri: str | None = None,
                   log_uri: str | None = None) -> EvalInputs:
    """A model URI plus a data URI (`run_id` then only names the run), or a TrainFlow run id
    alone, whose model or data either URI overrides."""
    run_id, model_uri, data_uri, log_uri = map(_name, (run_id, model_uri, data_uri, log_uri))
    if model_uri and data_uri:
        shard, folder, manifest = data_location(data_uri)
        path, name = model_location(model_uri)
        return EvalInputs(model_uri=path, test_shard=shard, data_uri=folder, run_id=run_id,
                          log_path=log_uri, manifest=manifest, model_name=name)
    if not run_id:
        raise TextclfError("give run_id (e.g. TrainFlow/123), or both model_uri and data_uri")
    run = run_outputs(run_id)
    log = log_uri or join(run.paths.get("logs", run.paths["log_dir"]), "metrics.jsonl")
    inputs = EvalInputs(model_uri=run.model_uri, test_shard=run.test_shard, data_uri=run.paths["data"],
                        run_id=run.pathspec, log_path=log if exists(log) else None, manifest=run.manifest,
                        model_name=f"the model of {run.pathspec}")
    if model_uri:
        inputs.model_uri, inputs.model_name = model_location(model_uri)
    if data_uri:
        inputs.test_shard, inputs.data_uri, inputs.manifest = data_location(data_uri)
    return inputs


def model_location(uri: str) -> tuple[str, str]:
    """(model folder, the name a report shows) for any model name: registry and run names are
    resolved and shown with their version and run (`models:/textclf@champion (v3, TrainFlow/12)`),
    folders (local or gs://) are kept and shown as given."""
    if not (uri.startswith(("models:/", "TrainFlow/")) or uri.isdigit()):
        return uri, uri
    model = resolve_model(uri)
    origin = ", ".join(x for x in (model.version and f"v{model.version}", model.run_id) if x and x != uri)
    return model.path, f"{uri} ({origin})" if origin else uri


def data_location(data_uri: str) -> tuple[str, str | None, dict[str, Any]]:
    """(test shard, data folder or None, manifest or {}) for a data folder or a single shard."""
    manifest_uri = join(data_uri, "manifest.json")
    if exists(manifest_uri):
        manifest = read_json(manifest_uri)
        return manifest["shards"]["test"], data_uri, manifest
    if not exists(data_uri):
        raise TextclfError(f"data_uri {data_uri!r} does not exist")
    return data_uri, None, {}


def load_manifest(run_id: str | None = None, data_uri: str | None = None) -> tuple[dict[str, Any], str]:
    """(preprocessing manifest, data folder) of a run, or of a data folder written by preprocessing."""
    run_id, data_uri = _name(run_id), _name(data_uri)
    if run_id and not data_uri:
        inputs = resolve_inputs(run_id=run_id)
        return inputs.manifest, inputs.data_uri
    if not data_uri:
        raise TextclfError("give run_id (e.g. TrainFlow/123) or data_uri (a preprocessed data folder)")
    _, folder, manifest = data_location(data_uri)
    if not folder:
        raise TextclfError(f"data_uri {data_uri!r} has no manifest.json: give the data folder, not one shard")
    return manifest, folder
