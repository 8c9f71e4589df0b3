"""A throwaway git + DVC repo set up as this project ships its own: the same `.dvc/config` (the
default remote is a folder in the clone, analytics off), `.dvcignore` and `.gitignore`, one commit.

Tests that version data commit into it, never into the checkout under test.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import ROOT

SHIPPED = (".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore")


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout.strip()


def dvc_project(repo: Path) -> Path:
    """`repo` as a git repo holding the project's DVC set-up, committed."""
    for name in SHIPPED:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "tests@textclf")
    sh(repo, "git", "config", "user.name", "textclf tests")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "the project's DVC set-up")
    return repo
