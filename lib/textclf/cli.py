"""The `textclf` command: one entry point, one subcommand per module that does the work."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, help). Each module provides `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "lineage": ("textclf.lineage", "print where a registered model came from: run, data, code, config"),
    "serve": ("textclf.serve.app", "serve a model: Gradio demo + JSON API"),
    "export": ("textclf.export", "export a model to ONNX (fp32 and int8) and record accuracy parity"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    args = parser.parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
