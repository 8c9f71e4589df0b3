"""Which registered model a TrainFlow run belongs to, decided in its start step.

The registry gate compares a candidate with the champion of the same name, and a champion of
another task (other labels, or single- vs multi-label) cannot be compared. Found only at the end,
that costs the whole run; found in `start`, it costs seconds. `registry.model_name: auto` (the
default) registers under `textclf` unless that name's champion is another task, and then under a
name that follows the task's labels (`textclf-billing-shipping`, `textclf-multi-...`). An explicit
name whose champion is another task stops the run at once. Every name is then the one the run's
`@project` branch writes (`textclf.branches`): `textclf` on `prod`, `textclf.test.x` on `--branch x`.
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.branches import registered_name
from textclf.config import DataConfig, RegistryConfig
from textclf.errors import TextclfError
from textclf.registry.resolution import parse_models_uri

AUTO = "auto"
BASE = "textclf"


@dataclass(frozen=True)
class Task:
    labels: frozenset[str]
    multi_label: bool

    def describe(self) -> str:
        return f"{'multi' if self.multi_label else 'single'}-label over {sorted(self.labels)}"

    def comparable(self, other: "Task") -> bool:
        """What the gate needs (`gate_score`): the same kind, and labels in common."""
        return self.multi_label == other.multi_label and bool(self.labels & other.labels)


def data_task(data: DataConfig, found: dict[str, dict[str, Any]]) -> Task:
    """The task of the configured data, from the labels `check_sources` saw in the files' heads,
    under the names the model will carry (`data.label_names`)."""
    names = {str(k): str(v) for k, v in (data.label_names or {}).items()}
    labels = {names.get(label, label) for entry in found.values() for label in entry.get("classes", {})}
    return Task(frozenset(labels), bool(data.multi_label))


def champion_task(client, name: str) -> tuple[str, Task] | None:
    """(version, task) of `name`'s champion, from the data manifest its MLflow run logged; None
    when there is no champion, or it was logged without one."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, "champion")
        with tempfile.TemporaryDirectory(prefix="textclf-naming-") as tmp:
            manifest = json.loads(Path(client.download_artifacts(version.run_id, "data/manifest.json", tmp)).read_text())
    except (MlflowException, OSError):
        return None
    return str(version.version), manifest_task(manifest)


def task_name(task: Task) -> str:
    """`textclf-<labels>` (`textclf-multi-<labels>`), a hash standing in for long label sets."""
    slug = "-".join(sorted(re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "x" for label in task.labels))
    if len(slug) > 40:
        slug = f"{slug[:24].rstrip('-_')}-{len(task.labels)}labels-{hashlib.sha1(slug.encode()).hexdigest()[:8]}"
    return f"{BASE}-{'multi-' if task.multi_label else ''}{slug}"


def manifest_task(manifest: dict[str, Any]) -> Task:
    """The task preprocessing settled on: every label, under the model's names."""
    return Task(frozenset(manifest["id2label"].values()), bool(manifest["multi_label"]))


def registered_uri(uri: str, branch: str, tracking_uri: str) -> str:
    """`models:/<name>@<alias>` (or `/<version>`) as a run on `branch` names it: a branch's
    MonitorFlow watches the champion its own TrainFlow writes. Other URIs are left as they are."""
    if not uri.startswith("models:/"):
        return uri
    name, alias, version = parse_models_uri(uri[len("models:/"):])
    name = registered_name(name, branch, tracking_uri)
    return f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"


def registry_name(rcfg: RegistryConfig, task: Task, branch: str = "") -> tuple[str, str]:
    """(the name a run of `task` on `branch` registers under, why)."""
    from textclf.registry.tracking import client as make_client

    c = make_client(rcfg)
    base, own = (registered_name(n, branch, rcfg.tracking_uri) for n in (BASE, task_name(task)))

    def clash(name: str) -> str | None:
        champion = champion_task(c, name)
        if champion is None or not task.labels or champion[1].comparable(task):
            return None
        return f"{name}'s champion v{champion[0]} is {champion[1].describe()}, but this run's data is {task.describe()}"

    if rcfg.model_name != AUTO:
        name = registered_name(rcfg.model_name, branch, rcfg.tracking_uri)
        found_clash = clash(name)
        if found_clash:
            raise TextclfError(f"registry.model_name={rcfg.model_name}: {found_clash}, so the registry gate could not "
                               f"compare them after training. Name this task's model (registry.model_name="
                               f"{task_name(task)}), or leave registry.model_name=auto")
        return name, "registry.model_name"
    if clash(base) is None:
        return base, "auto: the project's name"
    found_clash = clash(own)
    if found_clash:
        raise TextclfError(f"registry.model_name=auto: {found_clash}; set registry.model_name to a name of its own")
    return own, f"auto: {clash(base)}"
