"""What a finished TrainFlow run produced, found through the Metaflow client."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textclf.errors import TextclfError


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


def find_run(run_id: str | int):
    """A Metaflow Run from `TrainFlow/123`, `123` or 123 (Papermill's `-p run_id 123` passes an int)."""
    from metaflow import Run, namespace

    namespace(None)
    run_id = str(run_id)
    return Run(run_id if "/" in run_id else f"TrainFlow/{run_id}")


def run_outputs(run_id: str | int) -> RunOutputs:
    run = find_run(run_id)
    joined = run["join_train"].task if "join_train" in run else None
    if joined is None or not joined.successful:  # the model exists from join_train on, even if later steps failed
        last = next(iter(run), None)  # steps come newest first
        ended = last is None or "attempt_ok" in last.task.metadata_dict  # set when an attempt ends, failed or not
        state = "stopped" if ended else "is still running"
        raise TextclfError(f"{run.pathspec} has no trained model: it {state} before join_train finished "
                           f"(last step: {last.id if last else 'none'}); give a run that trained")
    data = joined.data
    return RunOutputs(pathspec=run.pathspec, model_uri=data.model_uri, manifest=data.manifest, cfg=data.cfg,
                      paths=data.paths)
