"""The registry and its champion gate.

The gate scores the candidate and the current `champion` on the same rows (the candidate's test
split; the candidate's scores are those its run stored beside the model) and moves `champion` only
when the candidate is better by `registry.gate_margin` on `registry.gate_metric`; otherwise the
candidate is tagged `challenger`. With `registry.golden` set, both are also scored on that pinned
golden set (read by `registry.golden`), and the decision follows the golden scores: the test split
moves with every data version, the golden rows do not. Every decision and score is recorded on the model
version (tags), in the MLflow run (params, metrics), in the model card and printed.

The model is logged as an MLflow pyfunc around its `save_pretrained` folder, with a model card
(`registry.mlflow_model`, `registry.model_card`): no pickled Python object, no
`mlflow.transformers` flavour (which imports torchvision and looks up model cards online).
"""
from __future__ import annotations

import tempfile
import time
from functools import cache, partial
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from textclf.config import from_dict
from textclf.data.shards import read_split
from textclf.errors import TextclfError
from textclf.evaluation.metrics import quick_metrics, resolve_metric
from textclf.evaluation.scoring import SPLIT_COLUMNS, StoredScores, load_predictor, stored_scores
from textclf.registry.golden import read_golden
from textclf.registry.mlflow_model import FOLDER, save_pyfunc, stage_folder
from textclf.registry.model_card import write_model_card
from textclf.registry.naming import AUTO, manifest_task, registry_name
from textclf.registry.resolution import CACHE, download_version, test_metrics
from textclf.registry.tracking import client, registry_config
from textclf.storage import download_dir

CHAMPION, CHALLENGER = "champion", "challenger"


def gate_score(model_path: str | Path, rows: str | pd.DataFrame, id2label: dict[Any, str], metric: str,
               multi_label: bool, who: str = "the candidate", load: Callable[[], Any] | None = None) -> float:
    """`metric` of a model on `rows` (a test split's shard URI, or rows already read: `text` and
    `label` ids of `id2label`, as the golden set), from the raw texts with the model's own tokenizer,
    with gold labels matched by name (the champion's label ids need not match the candidate's).
    On a split, the candidate's probabilities are the ones its run stored (`scoring.stored_scores`:
    the very rows, through the same tokenizer); a model without stored scores for them is scored now.
    A model of the other kind (single- vs multi-label), or one that knows none of the data's labels,
    solves another task: no score (it would be 0 and always lose), a clear error. `load`: where the
    model comes from when it must be scored now (the gate passes one that loads each model once)."""
    import numpy as np

    frame = read_split(rows, SPLIT_COLUMNS) if isinstance(rows, str) else rows
    head = stored_scores(str(model_path), frame) if isinstance(rows, str) else None  # or the model itself
    if head is None:
        head = load() if load else load_predictor(str(model_path))
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


def _scores(score, folder: Path, champion_path: Path | None, test_shard: str,
            golden: pd.DataFrame | None, who: str) -> dict[str, float | None]:
    """Candidate and champion on the test split and, when configured, on the golden set (None: not
    scored). A model that both sets must score now (the champion) is loaded once for both."""
    models = {"candidate": (folder, "the candidate"), "champion": (champion_path, who)}
    found: dict[str, float | None] = {}
    for key, (path, name) in models.items():
        load = cache(partial(load_predictor, str(path)))
        found[key] = None if path is None else score(path, test_shard, who=name, load=load)
        found[f"golden_{key}"] = None if path is None or golden is None else score(path, golden, who=name, load=load)
    return found


def _decision(scores: dict[str, float | None], champion, metric: str, margin: float,
              golden: str | None, golden_rows: int) -> tuple[bool, str]:
    """Promote or not, and why: on the golden set when there is one, else on the test split."""
    if champion is None:
        return True, "no champion yet"
    prefix, where = ("golden_", f"the golden set {golden} ({golden_rows} pinned rows, the same for every "
                     "data version)") if golden else ("", "the candidate's test split")
    candidate, held = scores[f"{prefix}candidate"], scores[f"{prefix}champion"]
    promote = candidate > held + margin
    reason = (f"candidate {metric} {candidate:.4f} vs champion v{champion.version} {held:.4f} on {where}: "
              f"{'better' if promote else 'not better'} by more than the margin {margin}")
    if golden:
        reason += f"; on the candidate's test split {scores['candidate']:.4f} vs {scores['champion']:.4f}"
    return promote, reason


def _log_model(c, run_id: str, folder: Path, name: str, manifest: dict[str, Any], gate: dict[str, Any]) -> None:
    """The run's `model` artifact: the folder with its model card (the gate's scores in it), as an MLflow pyfunc."""
    run = c.get_run(run_id)
    origin = {**run.data.tags, "mlflow_run": run_id}
    with tempfile.TemporaryDirectory(prefix="textclf-register-") as tmp:
        staged = stage_folder(Path(folder), Path(tmp) / FOLDER)
        write_model_card(staged, name, manifest, test_metrics(run), origin, gate)
        c.log_artifacts(run_id, str(save_pyfunc(staged, Path(tmp) / "model")), "model")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _pair(scores: dict[str, float | None], prefix: str) -> str:
    """`0.9500 (champion 0.9000)`: the candidate's score on one set, and the champion's when there is one."""
    held = scores[f"{prefix}champion"]
    return f"{scores[f'{prefix}candidate']:.4f}" + ("" if held is None else f" (champion {held:.4f})")


def register(cfg: dict[str, Any], run_id: str, model_uri: str, manifest: dict[str, Any], pathspec: str) -> dict[str, Any]:
    """Log the model folder, create a model version, and run the champion / challenger gate."""
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    rcfg = registry_config(cfg)
    if rcfg.model_name == AUTO:  # TrainFlow's start step names it; a direct call decides here
        rcfg.model_name, _ = registry_name(rcfg, manifest_task(manifest), cfg.get("branch", ""))
    # The golden rows first: a bad one stops the gate before any model is loaded or registered.
    golden = read_golden(rcfg.golden, from_dict(cfg).data, manifest["id2label"]) if rcfg.golden else None
    c = client(rcfg)
    metric = resolve_metric(rcfg.gate_metric, manifest["multi_label"])
    margin = rcfg.gate_margin
    folder = download_dir(model_uri, CACHE / "folders")
    champion = _current_champion(c, rcfg.model_name)
    # Every score before anything is registered: a champion that cannot be compared leaves no version behind.
    scores = _scores(partial(gate_score, id2label=manifest["id2label"], metric=metric,
                             multi_label=manifest["multi_label"]),
                     folder, None if champion is None else download_version(champion, rcfg.tracking_uri),
                     manifest["shards"]["test"], golden,
                     "" if champion is None else f"{rcfg.model_name} v{champion.version} (the champion)")
    golden_rows = 0 if golden is None else len(golden)
    promote, reason = _decision(scores, champion, metric, margin, rcfg.golden, golden_rows)
    alias = CHAMPION if promote else CHALLENGER
    previous = str(champion.version) if champion else None  # sqlite stores say 1, servers "1"
    gate = {"decision": alias, "reason": reason, "metric": metric, "golden": rcfg.golden, "golden_rows": golden_rows,
            "champion_version": previous, **scores}
    _log_model(c, run_id, folder, rcfg.model_name, manifest, gate)
    try:
        c.get_registered_model(rcfg.model_name)
    except MlflowException:
        c.create_registered_model(rcfg.model_name, description="textclf text classifier (textclf.registry)")
    version = str(c.create_model_version(rcfg.model_name, f"{c.get_run(run_id).info.artifact_uri}/model",
                                         run_id=run_id, tags={"metaflow.pathspec": pathspec}).version)
    c.set_registered_model_alias(rcfg.model_name, alias, version)
    tags = {"gate.decision": alias, "gate.reason": reason, "gate.metric": metric, "gate.margin": str(margin),
            "gate.candidate": _fmt(scores["candidate"]), "gate.champion": _fmt(scores["champion"]),
            "gate.champion_version": previous or "", "gate.golden": rcfg.golden or "",
            "gate.golden_candidate": _fmt(scores["golden_candidate"]),
            "gate.golden_champion": _fmt(scores["golden_champion"])}
    for k, v in tags.items():
        c.set_model_version_tag(rcfg.model_name, version, k, str(v))
    now = int(time.time() * 1000)
    metrics = [Metric(f"gate_{key}_{metric}", value, now, 0) for key, value in scores.items() if value is not None]
    params = [Param("gate.decision", alias), Param("gate.margin", str(margin))]
    c.log_batch(run_id, metrics=metrics, params=params + ([Param("gate.golden", rcfg.golden)] if rcfg.golden else []))
    c.set_tag(run_id, "registry.version", f"{rcfg.model_name}/{version}")
    c.set_terminated(run_id)
    print(f"registry: {rcfg.model_name} v{version} -> {alias} ({reason})", flush=True)
    print(f"registry: {metric} on the test split {_pair(scores, '')}"
          + (f", on the golden set {_pair(scores, 'golden_')}" if golden is not None else ""), flush=True)
    return {"model_name": rcfg.model_name, "version": version, "alias": alias, "metric": metric,
            "candidate": scores["candidate"], "champion": scores["champion"], "golden": rcfg.golden,
            "golden_candidate": scores["golden_candidate"], "golden_champion": scores["golden_champion"],
            "previous_champion": previous, "reason": reason}
