"""`textclf --help` answers at once: what each help imports, read from `python -X importtime`.

Counts what was imported and the interpreter's own import clock, not wall time, so a busy machine
cannot fail it and a slow import cannot hide behind a fast one.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from textclf.cli import COMMANDS

HEAVY = ("torch", "transformers", "mlflow", "gradio", "dask", "distributed", "metaflow", "pandas", "pyarrow",
         "fastapi", "uvicorn", "papermill", "onnxruntime", "sklearn", "captum", "hydra", "omegaconf")
BUDGET_US = 1_000_000  # one second of import time for the whole help, the interpreter's own start included


def imports_of(*argv: str) -> dict[str, int]:
    """Module -> cumulative import microseconds, for `textclf <argv>` run to its exit; the name keeps
    importtime's indentation (one space: imported at top level, more: inside another import)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import sys; from textclf.cli import main; sys.argv[0] = 'textclf'; main(sys.argv[1:])",
                           *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: textclf" in done.stdout
    times = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            times[name] = int(cumulative)
    assert " textclf.cli" in times, done.stderr[-2000:]
    return times


@pytest.mark.parametrize("argv", [("--help",)] + [(name, "--help") for name in COMMANDS], ids=" ".join)
def test_help_imports_nothing_heavy(argv):
    times = imports_of(*argv)
    heavy = sorted(m.strip() for m in times if m.strip().split(".")[0] in HEAVY)
    assert not heavy, f"`textclf {' '.join(argv)}` imports {heavy[:8]}: move them inside the subcommand"
    top_level = sum(t for m, t in times.items() if not m.startswith("  "))  # nested ones count in their parents
    assert top_level < BUDGET_US, f"`textclf {' '.join(argv)}` spends {top_level / 1e6:.2f} s importing"
