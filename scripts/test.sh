#!/usr/bin/env bash
# Set up (first time only), make sure the system tools the tests drive exist (Debian's chromium for
# the browser tests; docker.io and debootstrap for the cluster rehearsal), and run the whole suite
# with a coverage report (-m "": every marker, the integration flows and the rehearsal included;
# plain pytest runs the developer selection of pyproject.toml). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null; fi
}
if ! command -v chromium >/dev/null 2>&1; then
  echo "test: installing Debian chromium for the browser tests"
  apt_install chromium
fi
if ! { command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; }; then
  echo "test: installing Debian docker.io and debootstrap for the cluster rehearsal"
  apt_install docker.io debootstrap || echo "test: could not install them: the rehearsal will skip and say why" >&2
fi
# shellcheck disable=SC1091
. .venv/bin/activate && . scripts/env.sh
python -m pytest -m "" --cov=textclf --cov-report=term --cov-report=xml "$@"
