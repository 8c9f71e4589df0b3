#!/usr/bin/env bash
# Create .venv and install textclf with everything it needs. Idempotent: re-installs only when
# pyproject.toml changed. Needs only PyPI (torch==2.13.0 is the CPU wheel this machine has on disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.textclf-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing textclf and its dependencies into .venv (a few minutes, once)"
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".[dev]"
  python -m ipykernel install --sys-prefix --name textclf --display-name "textclf" >/dev/null
  echo "$want" > "$stamp"
fi
