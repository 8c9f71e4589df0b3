"""The torchrun entry point every rank runs: `python -m textclf.training.worker <spec.json>`.

The spec (written by `textclf.training.launcher`) holds the resolved config, the shard
manifest, and where the model, checkpoints and logs go. Rank 0 writes; all ranks train.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from textclf.training.loop import fit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textclf.training.worker", description=__doc__)
    parser.add_argument("spec", help="JSON spec written by TrainFlow (config, manifest, output paths)")
    parser.add_argument("--stop-after-steps", type=int, default=None, help="checkpoint and stop (preemption drill)")
    args = parser.parse_args(argv)
    fit(json.loads(Path(args.spec).read_text()), stop_after_steps=args.stop_after_steps)


if __name__ == "__main__":
    main()
