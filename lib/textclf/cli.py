"""The `textclf` command: `lineage`, `serve`, `predict`, `export`, `data check` and `data add`.

Parsing arguments imports nothing heavy: each subcommand imports the stage that does its work
only once it runs, so `textclf --help` answers at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from textclf.environment import apply_defaults
from textclf.errors import TextclfError
from textclf.model.onnx_runtime import VARIANTS

MODEL_HELP = "models:/<name>@<alias>, models:/<name>/<version>, a TrainFlow run id (TrainFlow/123) or a model folder"


def lineage(args: argparse.Namespace) -> int:
    import yaml

    from textclf.registry.lineage import lineage as trace

    record = trace(args.model, args.tracking_uri)
    print(json.dumps(record, indent=2, default=str) if args.json
          else yaml.safe_dump(json.loads(json.dumps(record, default=str)), sort_keys=False))
    return 0


def serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn
    from mlflow.exceptions import MlflowException

    from textclf.config import compose
    from textclf.serve.app import create_app
    from textclf.serve.model_holder import ModelHolder

    cfg = compose(overrides=args.overrides)
    settings = cfg.serve
    for key in ("model", "host", "port", "poll_seconds", "feedback_root", "variant"):
        if getattr(args, key) is not None:
            setattr(settings, key, getattr(args, key))
    os.environ.setdefault("MLFLOW_TRACKING_URI", cfg.registry.tracking_uri)
    try:
        holder = ModelHolder(settings.model, settings.poll_seconds, variant=settings.variant)
    except (OSError, ValueError, MlflowException) as exc:
        print(f"textclf serve: cannot load model {settings.model!r}: {exc}", file=sys.stderr)
        return 2
    _log_to_console("textclf.serve")
    uvicorn.run(create_app(settings, holder), host=settings.host, port=settings.port)
    return 0


def _log_to_console(name: str) -> None:
    """INFO and up from `name` on stderr beside uvicorn's lines, so the person running the server
    sees alias swaps and failed reloads (Python shows only warnings from unconfigured loggers)."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def predict(args: argparse.Namespace) -> int:
    """`textclf predict MODEL INPUT OUTPUT`: every text of a file scored into one Parquet or CSV file."""
    from textclf.config import compose
    from textclf.serve.batch_scoring import predict_file

    cfg = compose(overrides=args.overrides)
    done = predict_file(args.model, args.input, args.output, cfg, args.text_column)
    model = done["model"]
    print(f"{done['rows']:,} rows -> {done['output']} (model {model['uri']}, version {model['version']}; "
          f"{done['seconds']:.1f} s, {done['rows_per_s']} rows/s)")
    return 0


def export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textclf.evaluation.parity import export_with_parity
    from textclf.model.onnx_runtime import ONNX_DIR
    from textclf.registry.resolution import resolve_model
    from textclf.registry.runs import run_outputs
    from textclf.storage import is_remote, join, local_dir, upload_dir

    if Path(args.model).is_dir():
        folder_uri, shard = args.model, None
    else:
        resolved = resolve_model(args.model)
        folder_uri, shard = resolved.path, run_outputs(resolved.run_id).test_shard if resolved.run_id else None
    shard = args.test_shard or shard
    if not is_remote(folder_uri) and not Path(folder_uri, "config.json").is_file():
        raise TextclfError(f"{folder_uri} is not a model folder (no config.json)")
    with local_dir(folder_uri) as folder:
        record = export_with_parity(folder, shard, args.batch_size)
        if is_remote(folder_uri):
            upload_dir(folder / ONNX_DIR, join(folder_uri, ONNX_DIR))
    if shard is None:
        print("no test split known for this model: parity not measured (pass --test-shard)")
    print(json.dumps({"model": folder_uri, **record}, indent=2))
    return 0


def data(args: argparse.Namespace) -> int:
    """`textclf data check FILE`: the checks TrainFlow's start step makes, in seconds.
    `textclf data add FILE`: the same checks, then a DVC version of the file (see `_data_add`)."""
    from textclf.config import compose
    from textclf.data.sources import check_sources

    overrides = list(args.overrides)
    if args.file and "=" in args.file and not Path(args.file).exists():  # `data check data.train=a.csv ...`
        overrides.insert(0, args.file)
    elif args.file:
        overrides.insert(0, f"data.source={args.file}")
    cfg = compose(overrides=overrides)
    for uri, found in check_sources(cfg.data).items():
        print(f"{uri}: {found['format']}", end="")
        if "rows" in found:
            extent = "the whole file" if found["whole_file"] else "the first 4 MiB"
            classes = ", ".join(f"{k} {v:,}" for k, v in found["classes"].items())
            print(f"; {found['rows']:,} rows in {extent}; labels: {classes or 'none'}", end="")
        print()
    if args.action == "add":
        return _data_add(args)
    print("ok: nothing found that would stop a run before training (duplicates and splits are checked "
          "by preprocessing)")
    return 0


def _data_add(args: argparse.Namespace) -> int:
    """dvc add + dvc push + git add of the .dvc file and its .gitignore, and a commit of those two
    files alone unless --no-commit: the commit is what makes the version a revision to train on."""
    from textclf.data.dvc_versions import add_version

    if not args.file or not Path(args.file).is_file():
        raise TextclfError(f"{args.file or 'FILE'}: give a data file inside the DVC repo")
    version = add_version(args.file, remote=args.remote, message=args.message, commit=not args.no_commit,
                          push=not args.no_push)
    print(f"{version.path}: DVC md5 {version.md5}, " + (f"pushed to remote {version.remote!r}" if version.remote
                                                         else "not pushed (dvc push when ready)"))
    if version.rev is None:
        print(f"staged {version.path}.dvc and its .gitignore, not committed: commit them, then train with "
              f"data.source={version.uri} data.revision=<that commit>")
        return 0
    print(f"committed {version.path}.dvc and its .gitignore alone: {version.rev}\ntrain on this version:\n"
          f"  python flows/train_flow.py --config-value config '{version.overrides()}' run")
    return 0


def _lineage_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else registry.tracking_uri)")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=MODEL_HELP + " (default: serve.model in the config)")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    p.add_argument("--poll-seconds", type=float, help="how often to follow the alias; 0: never")
    p.add_argument("--feedback-root", help="folder or gs:// prefix for the feedback store")
    p.add_argument("--variant", choices=VARIANTS, help="torch (default), onnx or onnx-int8 (exported if missing)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. serve.max_texts=16")


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("input", help="a CSV / TSV / JSONL / Parquet file of texts, local or gs://")
    p.add_argument("output", help="where the predictions go: a .parquet or .csv file, local or gs://")
    p.add_argument("--text-column", default=None, help="the column of texts (default: data.text_column, 'text')")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. predict.batch_size=128 data.format=tsv")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--test-shard", default=None,
                   help="Parquet test split for the parity check (default: the run's own test split)")
    p.add_argument("--batch-size", type=int, default=64)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check", "add"],
                   help="check: the fast checks of a data file; add: check it, then version it with DVC (dvc add, "
                        "dvc push, and a git commit of its .dvc file and .gitignore alone)")
    p.add_argument("file", nargs="?", help="a CSV / TSV / JSONL / Parquet file (or set data.* in the overrides)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.text_column=review data.format=tsv")
    p.add_argument("--remote", help="add: the DVC remote to push to (default: the repo's default remote)")
    p.add_argument("-m", "--message", help="add: the commit message (default: data: <path> (md5 <hash>))")
    p.add_argument("--no-commit", action="store_true", help="add: stage the .dvc file and .gitignore, do not commit")
    p.add_argument("--no-push", action="store_true", help="add: do not push to the remote")


# name -> (what it does, its arguments, the function that runs it)
COMMANDS: dict[str, tuple[str, Callable, Callable[[argparse.Namespace], int]]] = {
    "lineage": ("print where a registered model came from: run, data, code, config", _lineage_arguments, lineage),
    "serve": ("serve a model: Gradio demo + JSON API", _serve_arguments, serve),
    "predict": ("score every text of a file (CSV / TSV / JSONL / Parquet) into Parquet or CSV", _predict_arguments,
                predict),
    "export": ("export a model to ONNX (fp32 and int8) and record accuracy parity", _export_arguments, export),
    "data": ("check a data file in seconds (readable, UTF-8, columns, labels); add it as a DVC version",
             _data_arguments, data),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, arguments, command) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        arguments(p)
        p.set_defaults(_run=command)
    args = parser.parse_args(argv)
    apply_defaults()
    try:
        return int(args._run(args) or 0)
    except TextclfError as exc:
        print(f"textclf {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
