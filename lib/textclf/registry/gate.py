"""The registry and its champion gate.

The gate scores the candidate and the current `champion` on the same rows (the candidate's test
split; the candidate's scores are those its run stored beside the model) and moves `champion` only when the candidate is better by `registry.gate_margin` on
`registry.gate_metric`; otherwise the candidate is tagged `challenger`. Every decision is recorded
on the model version (tags), in the MLflow run (params, metrics) and printed.

The model is logged as an MLflow pyfunc around its `save_pretrained` folder, with a model card
(`registry.mlflow_model`, `registry.model_card`): no pickled Python object, no
`mlflow.transformers` flavour (which imports torchvision and looks up model cards online).
"""
from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from textclf.data.shards import read_split
from textclf.errors import TextclfError
from textclf.evaluation.metrics import quick_metrics, resolve_metric
from textclf.evaluation.scoring import SPLIT_COLUMNS, StoredScores, stored_scores
from textclf.registry.mlflow_model import FOLDER, save_pyfunc, stage_folder
from textclf.registry.model_card import write_model_card
from textclf.registry.naming import AUTO, manifest_task, registry_name
from textclf.registry.resolution import CACHE, download_version, test_metrics
from textclf.registry.tracking import client, registry_config
from textclf.storage import download_dir

CHAMPION, CHALLENGER = "champion", "challenger"


def gate_score(model_path: str | Path, test_shard: str, id2label: dict[Any, str], metric: str,
               multi_label: bool, who: str = "the candidate") -> float:
    """`metric` of a model on a test split, from the raw texts with the model's own tokenizer,
    with gold labels matched by name (the champion's label ids need not match the candidate's).
    The candidate's probabilities are the ones its run stored (`scoring.stored_scores`: the very
    rows, through the same tokenizer); a model without stored scores for these rows is scored now.
    A model of the other kind (single- vs multi-label), or one that knows none of the data's labels,
    solves another task: no score (it would be 0 and always lose), a clear error."""
    import numpy as np

    frame = read_split(test_shard, SPLIT_COLUMNS)
    head = stored_scores(str(model_path), frame)  # or the model itself: labels, kind and threshold either way
    if head is None:
        from textclf.model.predictor import Predictor

        head = Predictor(model_path)
    if head.multi_label != multi_label or not set(head.labels) & set(id2label.values()):
        kind = {True: "multi-label", False: "single-label"}
        raise TextclfError(
            f"{who} is a {kind[head.multi_label]} classifier over {head.labels}, but this run's data is "
            f"{kind[multi_label]} over {sorted(id2label.values())}: the gate cannot compare them. Register this "
            f"run under a name of its own, e.g. registry.model_name=textclf-{kind[multi_label]}")
    probs = head.served_probs if isinstance(head, StoredScores) else head.predict_proba(frame["text"].tolist())
    index = {name: i for i, name in enumerate(head.labels)}
    names = {int(k): v for k, v in id2label.items()}
    unknown = len(index)  # a label this model cannot predict: a column it never scores above zero
    to_model = {k: index.get(v, unknown) for k, v in names.items()}
    if unknown in to_model.values():
        probs = np.hstack([probs, np.zeros((len(probs), 1), probs.dtype)])
    truth = [[to_model[int(i)] for i in row] for row in frame["label"]] if head.multi_label \
        else np.asarray([to_model[int(i)] for i in frame["label"]])
    scores = quick_metrics(truth, probs, head.multi_label, head.threshold)
    if metric not in scores:
        raise TextclfError(f"registry.gate_metric={metric!r} is not one of {sorted(scores)} for this model")
    return scores[metric]


def _current_champion(c, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _log_model(c, run_id: str, folder: Path, name: str, manifest: dict[str, Any]) -> None:
    """The run's `model` artifact: the folder with its model card, as an MLflow pyfunc."""
    run = c.get_run(run_id)
    origin = {**run.data.tags, "mlflow_run": run_id}
    with tempfile.TemporaryDirectory(prefix="textclf-register-") as tmp:
        staged = stage_folder(Path(folder), Path(tmp) / FOLDER)
        write_model_card(staged, name, manifest, test_metrics(run), origin)
        c.log_artifacts(run_id, str(save_pyfunc(staged, Path(tmp) / "model")), "model")


def register(cfg: dict[str, Any], run_id: str, model_uri: str, manifest: dict[str, Any], pathspec: str) -> dict[str, Any]:
    """Log the model folder, create a model version, and run the champion / challenger gate."""
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    rcfg = registry_config(cfg)
    if rcfg.model_name == AUTO:  # TrainFlow's start step names it; a direct call decides here
        rcfg.model_name, _ = registry_name(rcfg, manifest_task(manifest), cfg.get("branch", ""))
    c = client(rcfg)
    metric = resolve_metric(rcfg.gate_metric, manifest["multi_label"])
    margin, test_shard = rcfg.gate_margin, manifest["shards"]["test"]
    folder = download_dir(model_uri, CACHE / "folders")
    score = partial(gate_score, test_shard=test_shard, id2label=manifest["id2label"], metric=metric,
                    multi_label=manifest["multi_label"])
    candidate = score(folder)
    champion = _current_champion(c, rcfg.model_name)
    # Both scores before anything is registered: a champion that cannot be compared leaves no version behind.
    champion_score = None if champion is None else score(
        download_version(champion, rcfg.tracking_uri), who=f"{rcfg.model_name} v{champion.version} (the champion)")
    _log_model(c, run_id, folder, rcfg.model_name, manifest)
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
