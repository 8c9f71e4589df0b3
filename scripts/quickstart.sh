#!/usr/bin/env bash
# Set up (first time only) and run TrainFlow on the embedded sample with the packaged MiniLM.
# Extra arguments go to `python flows/train_flow.py ... run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate && . scripts/env.sh
python flows/train_flow.py run "$@"
