#!/usr/bin/env bash
# Set up (first time only), make sure a headless Chromium exists for the browser tests, and run
# the whole suite with a coverage report. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "test: installing Debian chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate && . scripts/env.sh
python -m pytest --cov=textclf --cov-report=term --cov-report=xml "$@"
