"""The process settings textclf runs under by default: offline, no telemetry, quiet logs.

Nothing changes them on import. Entry points (the `textclf` command, flow steps, the server)
call `apply_defaults()` once, before the libraries that read them are imported; a value the
user set already wins. `scripts/env.sh` sets the same for shells.
"""
from __future__ import annotations

import os

DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # set HF_HUB_OFFLINE=0 to use Hub model and dataset names
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per file is noise in step logs
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",  # DVC repos other than this one (dvc://path@repo) may not say analytics=false
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def usable_cpus() -> int:
    """The cores this process may run on: its affinity mask (`taskset`, a container's cpuset, a test
    worker's share), not the machine's count, so thread pools never outnumber the cores they get."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def apply_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
