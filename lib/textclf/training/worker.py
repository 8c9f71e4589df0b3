"""The torchrun entry point every rank runs: `python -m textclf.training.worker <spec.json>`.

The spec (written by `textclf.training.launcher`) holds the resolved config, the shard
manifest, and where the model, checkpoints and logs go. Rank 0 writes; all ranks train.
With `"profile": true` (TrainFlow's model), rank 0 then scores the val and test splits once and
stores the scores and the drift profile beside the model, in this process: torch, transformers
and the library are imported already, where a step of its own would start and import again.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from textclf.training.loop import fit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textclf.training.worker", description=__doc__)
    parser.add_argument("spec", help="JSON spec written by TrainFlow (config, manifest, output paths)")
    parser.add_argument("--stop-after-steps", type=int, default=None, help="checkpoint and stop (preemption drill)")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    result = fit(spec, stop_after_steps=args.stop_after_steps)
    if result is not None and spec.get("profile") and os.environ.get("RANK", "0") == "0":
        from textclf.evaluation.profile import save_profile
        from textclf.training.launcher import model_workdir

        save_profile(spec["output"], spec["manifest"], local=model_workdir(spec["output"], spec["checkpoint_dir"]))


if __name__ == "__main__":
    main()
