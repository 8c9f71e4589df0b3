"""When the champion is no longer fit: the next data version (every earlier row plus accepted
feedback), the champion's config pointed at it, and the TrainFlow run that trains on it."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from textclf.config import from_dict
from textclf.data.cleaning import normalized_key
from textclf.data.versions import new_data_version, previous_rows
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


def next_training_config(champion_cfg: dict[str, Any], version: dict[str, Any],
                         kept: dict[str, str | None]) -> dict[str, Any]:
    """The champion's resolved config, pointed at the new data version and nothing else changed."""
    cfg = {**champion_cfg, "data": {**champion_cfg["data"], "text_column": "text", "label_column": "label",
                                    "format": None, "revision": None}}
    if kept:
        cfg["data"].update(source=None, train=version["uri"], val=kept["val"], test=kept["test"])
    else:
        cfg["data"].update(source=version["uri"], train=None, val=None, test=None)
    return cfg


def trigger_training(cfg: dict[str, Any], flow_file: str) -> str:
    """Run TrainFlow on `cfg` through the Metaflow Runner API; returns its pathspec."""
    from metaflow import Runner

    with Runner(flow_file, show_output=True, pylint=False, config_value=[("config", cfg)]).run() as running:
        if running.status != "successful":
            raise RuntimeError(f"retraining failed: {running.run.pathspec if running.run else flow_file}\n"
                               f"{running.stderr[-2000:]}")
        return running.run.pathspec


def plan_retraining(champion_run: str, fresh: pd.DataFrame, labels: list[str], artifact_root: str) -> dict[str, Any]:
    """The data version and config a retraining run takes: the champion's own rows plus the
    accepted fresh feedback, and the champion's resolved config pointed at that version."""
    champion_cfg = run_outputs(champion_run).cfg
    data_cfg = from_dict(champion_cfg).data
    rows, report = accepted_feedback(fresh, labels, data_cfg.multi_label)
    previous, kept = previous_rows(data_cfg)
    version = new_data_version(previous, rows, "text", "label", data_cfg.multi_label, data_cfg.label_delimiter,
                               artifact_root)
    return {"version": version, "feedback": report, "config": next_training_config(champion_cfg, version, kept)}
