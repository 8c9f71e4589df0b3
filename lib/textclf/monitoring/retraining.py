"""When the champion is no longer fit: the next data version (every earlier row plus accepted
feedback), the config that points at it, and the TrainFlow run that trains on it: started by an
Argo Event when MonitorFlow runs deployed (TrainFlow then runs as its own workflow, on its own
GPU pods), or through the Metaflow Runner when it runs locally."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd

from textclf.branches import runner_options
from textclf.config import from_dict
from textclf.data.cleaning import normalized_key
from textclf.data.dvc_versions import versioning_repo
from textclf.data.versions import new_data_version, previous_rows
from textclf.registry.resolution import run_record
from textclf.registry.runs import run_outputs


def accepted_feedback(feedback: pd.DataFrame, labels: list[str], multi_label: bool) -> tuple[pd.DataFrame, dict]:
    """Feedback rows fit to train on: non-empty text, known labels (one, unless multi-label);
    the latest answer wins when the same text was corrected more than once."""
    if feedback.empty:
        return feedback.assign(key=[]), {"received": 0, "accepted": 0, "rejected": {}}
    rows = feedback.copy()
    rows["text"] = rows["text"].astype(str).str.strip()
    rows["labels"] = rows["labels"].map(lambda v: [str(x) for x in (v if isinstance(v, (list, tuple, np.ndarray)) else [v])])
    known = set(labels)
    why = pd.Series("", index=rows.index, dtype=object)
    why[rows["text"] == ""] = "empty text"
    why[(why == "") & rows["labels"].map(lambda ls: not ls or not set(ls) <= known)] = "unknown label"
    if not multi_label:
        why[(why == "") & rows["labels"].map(len).ne(1)] = "several labels for a single-label model"
    ok = rows[why == ""].assign(key=lambda f: f["text"].map(normalized_key))
    if "timestamp" in ok:
        ok = ok.sort_values("timestamp", kind="stable")
    ok = ok.drop_duplicates("key", keep="last")
    return ok, {"received": len(rows), "accepted": len(ok), "rejected": why[why != ""].value_counts().to_dict()}


def retrain_data(version: dict[str, Any], kept: dict[str, str | None]) -> dict[str, Any]:
    """The `data` keys a retraining run changes: the new version in place of the old rows (with
    explicit splits only `train`: val and test stay, so old and new models meet on the same ground)."""
    data: dict[str, Any] = {"text_column": "text", "label_column": "label", "format": None,
                            "revision": version["revision"]}
    if kept:
        return {**data, "source": None, "train": version["uri"], "val": kept["val"], "test": kept["test"]}
    return {**data, "source": version["uri"], "train": None, "val": None, "test": None}


def with_data(cfg: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A resolved config with its `data` section updated and nothing else changed."""
    return {**cfg, "data": {**cfg["data"], **data}}


def champion_config(champion: dict[str, Any], tracking_uri: str) -> dict[str, Any]:
    """The resolved config the champion was trained with: from its MLflow run when it is
    registered (all a pod needs to reach), else from the Metaflow run that trained it."""
    if champion.get("mlflow_run"):
        return run_record(champion["mlflow_run"], tracking_uri)["config"]
    return run_outputs(champion["run_id"]).cfg


def plan_retraining(champion: dict[str, Any], tracking_uri: str, fresh: pd.DataFrame, labels: list[str],
                    artifact_root: str, dvc: bool = True) -> dict[str, Any]:
    """The data version a retraining run takes (the champion's own rows plus the accepted fresh
    feedback), the `data` keys that point at it, and the champion's config so pointed. With `dvc`,
    when the working folder is in a DVC repo with a default remote, the version is DVC-tracked,
    pushed and committed there; `versioning` says whether it was, and why not."""
    champion_cfg = champion_config(champion, tracking_uri)
    data_cfg = from_dict(champion_cfg).data
    rows, report = accepted_feedback(fresh, labels, data_cfg.multi_label)
    previous, kept = previous_rows(data_cfg)
    repo, versioning = versioning_repo(".") if dvc else (None, "not DVC-tracked: monitor.dvc is false")
    version = new_data_version(previous, rows, "text", "label", data_cfg.multi_label, data_cfg.label_delimiter,
                               artifact_root, dvc_repo=repo)
    data = retrain_data(version, kept)
    return {"version": version, "feedback": report, "data": data, "config": with_data(champion_cfg, data),
            "versioning": versioning}


def deployed() -> bool:
    """Running as a step of an Argo Workflows deployment (Metaflow's own test for it)."""
    return bool(os.environ.get("ARGO_WORKFLOW_TEMPLATE"))


def request_retraining(data: dict[str, Any], event: str, requested_by: str) -> str:
    """Deployed: publish `event` under this run's @project branch, which starts that branch's
    TrainFlow deployment on its own pods with `retrain_data` (the `data` keys) and `requested_by`
    as its parameters. Returns what was published."""
    from metaflow import namespaced_event_name
    from metaflow.integrations import ArgoEvent

    name = namespaced_event_name(event)()
    event_id = ArgoEvent(name=name).publish(payload={"retrain_data": json.dumps(data), "requested_by": requested_by},
                                            ignore_errors=False)
    return f"argo event {name} ({event_id})"


def train_locally(cfg: dict[str, Any], flow_file: str, requested_by: str, branch: str) -> str:
    """Not deployed: run TrainFlow on `cfg` through the Metaflow Runner API, on the monitor's own
    @project `branch`; returns its pathspec. The TrainFlow run gets `requested_by` as a parameter
    and the tag `retrained_by:<the MonitorFlow run>` at launch (a tag added later would rewrite the
    run's creation time); the monitor keeps the TrainFlow pathspec as `triggered`."""
    from metaflow import Runner

    runner = Runner(flow_file, show_output=True, pylint=False, config_value=[("config", cfg)], **runner_options(branch))
    with runner.run(tags=[f"retrained_by:{requested_by}"], requested_by=requested_by) as running:
        if running.status != "successful":
            raise RuntimeError(f"retraining failed: {running.run.pathspec if running.run else flow_file}\n"
                               f"{running.stderr[-2000:]}")
        return running.run.pathspec
