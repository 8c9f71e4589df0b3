"""Data versions: the content fingerprint a run is pinned to, and the next version MonitorFlow
writes when it folds accepted feedback into the rows a model was trained on."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.config import DataConfig
from textclf.data.cleaning import normalized_key
from textclf.data.dvc_versions import VERSIONS_DIR, add_version
from textclf.data.sources import Source, dvc_parts, read_source, sources
from textclf.storage import filesystem, join, write_bytes


def fingerprint(srcs: list[Source]) -> dict[str, Any]:
    """Content hash of every source, and of them all together: the same bytes give the same
    fingerprint however they are addressed (a path, gs://, or dvc:// at a revision). A dvc://
    source also records where it lives: its path, repo, the commit the revision names and DVC's md5
    (None for a file git tracks itself)."""
    parts: dict[str, Any] = {}
    digest = hashlib.sha256()
    for src in srcs:
        entry: dict[str, Any] = {"split": src.split}
        if src.is_dvc:
            from dvc.api import DVCFileSystem

            path, repo = dvc_parts(src.uri)
            fs = DVCFileSystem(repo, rev=src.revision)
            info = fs.info(path)
            entry.update(dvc_path=path, **_dvc_repo_and_rev(fs, repo, src.revision),
                         dvc_md5=info.get("md5") or info.get("dvc_info", {}).get("md5"),
                         sha256=_sha256(fs, [path]))
        elif src.is_hub:
            entry["sha256"] = hashlib.sha256(src.uri.encode()).hexdigest()
        else:
            fs, path = filesystem(src.uri)
            entry["sha256"] = _sha256(fs, sorted(fs.find(path)) if fs.isdir(path) else [path])
        parts[src.uri] = entry
        digest.update(f"{src.split}:{entry['sha256']}".encode())
    return {"sha256": digest.hexdigest(), "sources": parts}


def _dvc_repo_and_rev(fs: Any, repo: str, revision: str | None) -> dict[str, str | None]:
    """The repo (its root folder when local) and the commit `revision` names; a DVC repo without
    git (`dvc init --no-scm`) has no commit to name, so no `dvc_rev`."""
    from dvc.scm import NoSCM

    scm = fs.repo.scm
    if isinstance(scm, NoSCM):
        return {"dvc_repo": fs.repo.root_dir, "revision": revision}
    return {"dvc_repo": scm.root_dir if Path(repo).exists() else repo, "revision": revision,
            "dvc_rev": scm.resolve_rev(revision or "HEAD")}


def _sha256(fs: Any, files: list[str]) -> str:
    h = hashlib.sha256()
    for file in files:
        with fs.open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def new_data_version(previous: pd.DataFrame, feedback: pd.DataFrame, text_column: str, label_column: str,
                     multi_label: bool, delimiter: str, root: str, dvc_repo: Path | None = None) -> dict[str, Any]:
    """Previous rows, unchanged and in order, followed by each accepted feedback row once.

    A feedback row whose text already appears with the same labels adds nothing; one that
    corrects an earlier label is appended, and preprocessing's deduplication keeps one of them.
    Content-addressed, never overwritten: `<root>/datasets/<sha256[:16]>/data.csv`, or with a
    `dvc_repo`, `data/versions/<sha256[:16]>.csv` in it, DVC-tracked, pushed and committed, so its
    `uri` and `revision` (dvc:// at that commit) give the same rows back from any clone.
    """
    def as_labels(value: Any) -> tuple[str, ...]:
        parts = str(value).split(delimiter) if multi_label else [str(value)]
        return tuple(sorted(p.strip() for p in parts if p.strip()))

    seen = {(normalized_key(str(t)), as_labels(y)) for t, y in zip(previous[text_column], previous[label_column])}
    fresh = feedback[[(k, tuple(sorted(ls))) not in seen for k, ls in zip(feedback["key"], feedback["labels"])]]
    added = pd.DataFrame({text_column: fresh["text"].tolist(),
                          label_column: [delimiter.join(ls) if multi_label else ls[0] for ls in fresh["labels"]]})
    version = pd.concat([previous[[text_column, label_column]], added], ignore_index=True)
    data = version.to_csv(index=False).encode()
    sha = hashlib.sha256(data).hexdigest()
    record = {"sha256": sha, "rows": len(version), "previous_rows": len(previous), "added_rows": len(added)}
    if dvc_repo is None:
        uri = join(root, "datasets", sha[:16], "data.csv")
        write_bytes(uri, data)
        return {"uri": uri, "revision": None, "path": uri, "dvc": None, **record}
    path = dvc_repo / VERSIONS_DIR / f"{sha[:16]}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    tracked = add_version(path, message=f"data: version {sha[:16]}, {len(previous)} earlier rows + {len(added)} "
                                        f"from feedback (MonitorFlow)")
    return {"uri": tracked.uri, "revision": tracked.rev, "path": str(path), "dvc": tracked.to_dict(), **record}


def previous_rows(data_cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, str | None]]:
    """The rows a model was trained on, as read from its sources (before cleaning), and the
    sources a new version keeps unchanged: with explicit splits only `train` grows, so val and
    test stay fixed and the gate compares old and new models on the same ground."""
    srcs = [s for s in sources(data_cfg) if s.split in (None, "train")]
    frame = pd.concat([read_source(s, data_cfg).compute() for s in srcs], ignore_index=True)
    kept = {"val": data_cfg.val, "test": data_cfg.test} if data_cfg.train else {}
    return frame[["text", "label"]], kept
