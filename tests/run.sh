#!/usr/bin/env bash
# The whole test suite on a fresh machine that has Python 3.11 and pip: installs everything the
# tests need (project venv, Chromium for the Hub page test, the transformers 4.57.6 env), then runs
# pytest.  Extra arguments go to pytest, e.g. `bash tests/run.sh -k convert`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
bash tests/hub/setup_browser.sh                         # Debian chromium + chromedriver, once
.venv/bin/python -m tensorferry.converters.maps.mapgen setup  # second env: transformers 4.57.6 (idempotent)
# Everything the tests need is installed above: a skipped test here would be a test that did not run.
export TENSORFERRY_NO_SKIPS=${TENSORFERRY_NO_SKIPS:-1}
exec .venv/bin/python -m pytest "$@"
