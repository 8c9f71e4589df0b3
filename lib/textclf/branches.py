"""Metaflow `@project` branches, carried into the two stores a team shares.

Every flow is `@project(name="textclf")`, so every run has a branch: `prod` (`--production`),
`test.X` or `prod.X` (`--branch X`), or the user's own `user.<name>` (neither). Metaflow keeps the
branches' runs and deployments apart; the MLflow registry and the artifact root follow it. A run
on any branch but `prod` registers `<name>.<branch>` and writes under `<artifact_root>/<branch>/`,
so a test deployment can never take production's `champion` or write over its files.

One exception keeps a laptop simple: a user's own branch on a store nobody else writes (a local
MLflow database, a local folder) keeps the plain names, as there is no one to keep apart from.
On a shared tracking server or a gs:// root, `user.alice` is kept apart like any other branch.
"""
from __future__ import annotations

from urllib.parse import urlparse

from textclf.storage import is_remote, join

PRODUCTION = "prod"
LOCAL_REGISTRIES = ("", "file", "sqlite")  # tracking URI schemes only this machine writes


def _kept_apart(branch: str, shared: bool) -> bool:
    return bool(branch) and branch != PRODUCTION and (shared or not branch.startswith("user."))


def registered_name(name: str, branch: str, tracking_uri: str) -> str:
    """The registered model a run on `branch` writes for the configured `name` (idempotent, so a
    retraining run given its champion's resolved config names the same model)."""
    if not _kept_apart(branch, urlparse(tracking_uri).scheme not in LOCAL_REGISTRIES) or name.endswith(f".{branch}"):
        return name
    return f"{name}.{branch}"


def artifact_root(root: str, branch: str) -> str:
    """Where a run on `branch` keeps its big artifacts under the configured `root`."""
    return join(root, branch) if _kept_apart(branch, is_remote(root)) else root


def runner_options(branch: str) -> dict[str, object]:
    """The top-level options that start a flow on `branch` (Metaflow's Runner keywords): a run a
    flow starts itself stays on its own branch."""
    if branch == PRODUCTION:
        return {"production": True}
    kind, _, name = branch.partition(".")
    if kind == "test":
        return {"branch": name}
    if kind == "prod":
        return {"branch": name, "production": True}
    return {}  # user.<name>: the branch of whoever runs it
