"""The house rules of lib/textclf (docs/architecture.md), checked on the source itself.

Imports run one way: a stage may import the stages below it and the ground floor, never a
stage above it or beside it. A circle of imports held together by imports inside functions
is the thing this catches, so imports inside functions count as much as those at the top.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LIB = ROOT / "lib" / "textclf"
# Lowest first. Stages of the same rank (monitoring, tuning) may not import each other.
RANKS = {
    "config": 0, "config_checks": 0, "errors": 0, "storage": 0, "environment": 0, "ports": 0, "branches": 0,
    "model": 1, "data": 2, "evaluation": 3, "training": 4, "registry": 5,
    "monitoring": 6, "tuning": 6, "serve": 7,
    "cli": 8,  # the entry point: the `textclf` command
}


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every textclf module `path` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("textclf")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("textclf"):
            found |= {node.module} if node.module != "textclf" else {f"textclf.{a.name}" for a in node.names}
    return found


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that go up or sideways between stages."""
    bad = []
    for importer, targets in graph.items():
        a = stage(importer)
        for target in targets:
            b = stage(target)
            if a is None or b is None or a == b or (RANKS[a] == RANKS[b] == 0):
                continue
            if RANKS[b] >= RANKS[a]:
                bad.append((importer, target))
    return sorted(bad)


def library_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in LIB.rglob("*.py") if "metric_modules" not in p.parts}


def test_every_module_belongs_to_a_known_stage():
    unknown = {m for m in library_graph() if stage(m) is not None and stage(m) not in RANKS}
    assert not unknown, f"add these to RANKS and docs/architecture.md: {sorted(unknown)}"


def test_imports_run_one_way():
    assert violations(library_graph()) == []


@pytest.mark.parametrize("importer, imported", [
    ("textclf.data.preprocess", "textclf.training.launcher"),  # a lower stage reaching up
    ("textclf.monitoring.drift", "textclf.tuning.study"),  # a stage beside it
    ("textclf.config", "textclf.registry.resolution"),  # the ground floor reaching up
])
def test_the_check_catches_an_import_that_goes_the_wrong_way(importer, imported):
    graph = library_graph()
    graph[importer] = graph.get(importer, set()) | {imported}
    assert violations(graph) == [(importer, imported)]


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from textclf.serve.app import create_app\n    import textclf.tuning.study\n")
    assert imports_of(module) == {"textclf.serve.app", "textclf.tuning.study"}


def test_nothing_in_the_library_imports_the_flows():
    for path in LIB.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("flows") or n.endswith("_flow")], path


def test_no_environment_changes_on_import():
    """No module-level os.environ writes, and importing every module leaves the defaults unset."""
    for path in LIB.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            text = ast.unparse(node)
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assert "os.environ[" not in text.split("=")[0] and "environ.setdefault" not in text \
                    and "environ.update" not in text, f"{path}: {text[:120]}"
    from textclf.environment import DEFAULTS

    script = ("import importlib, os, pkgutil, textclf\n"
              "for m in pkgutil.walk_packages(textclf.__path__, 'textclf.'):\n"
              "    'metric_modules' in m.name or importlib.import_module(m.name)\n"
              f"print(sorted(k for k in {sorted(DEFAULTS)!r} if k in os.environ))\n")
    clean = {k: v for k, v in os.environ.items() if k not in DEFAULTS}
    done = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_errors_do_not_depend_on_metaflow():
    done = subprocess.run([sys.executable, "-c", "import sys, textclf.errors, textclf.config; "
                                                 "print('metaflow' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_modules_stay_small_and_training_functions_short():
    for path in LIB.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 350, f"{path.relative_to(LIB)}: {lines} lines; split it by what it does"
    for path in (LIB / "training").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"training/{path.name}: {node.name} is {length} lines"
