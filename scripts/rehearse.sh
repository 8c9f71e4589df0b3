#!/usr/bin/env bash
# The cluster rehearsal alone: build the project's image and run TrainFlow and MonitorFlow with
# every step in a container of it, as Argo would (tests/test_cluster.py). Needs root for dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/test.sh -m rehearsal --no-cov "$@"
