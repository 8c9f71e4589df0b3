"""What a finished TrainFlow run produced, found through the Metaflow client."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunOutputs:
    pathspec: str  # TrainFlow/<run id>
    model_uri: str
    manifest: dict[str, Any]
    cfg: dict[str, Any]
    paths: dict[str, str]

    @property
    def test_shard(self) -> str:
        return self.manifest["shards"]["test"]


def find_run(run_id: str):
    """A Metaflow Run from `TrainFlow/123` or `123` (any namespace)."""
    from metaflow import Run, namespace

    namespace(None)
    pathspec = run_id if "/" in run_id else f"TrainFlow/{run_id}"
    return Run(pathspec)


def run_outputs(run_id: str) -> RunOutputs:
    run = find_run(run_id)
    data = run["join_train"].task.data  # the model exists from here on, even if later steps failed
    return RunOutputs(pathspec=run.pathspec, model_uri=data.model_uri, manifest=data.manifest, cfg=data.cfg,
                      paths=data.paths)
