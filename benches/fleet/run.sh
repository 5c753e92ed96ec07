#!/usr/bin/env bash
# Fleet measurement (issue 15), not part of scripts/test.sh: N sidecars
# (default 50) poll one real nginx for a signed bundle with ETags; a new
# signed bundle is published and the time until every sidecar serves it is
# measured; then nginx stops and a third of the sidecars restart on their
# cached bundle. Prints a markdown report.
#
#   benches/fleet/run.sh [--sidecars 50] [--poll-interval 2] [--binary PATH]
#
# Uses $IAMGATE_BIN, else the newer of target/release/iamgate and
# target/debug/iamgate;
# nginx from Debian (`apt-get install nginx`, as scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
# IAMGATE_BIN, else the newer of the release and debug builds.
bin="${IAMGATE_BIN:-}"
if [ -z "$bin" ]; then
  bin=target/debug/iamgate
  [ -x target/release/iamgate ] && [ target/release/iamgate -nt "$bin" ] && bin=target/release/iamgate
fi
[ -x "$bin" ] || { echo "build iamgate first (cargo build)" >&2; exit 2; }
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || {
  echo "nginx is needed: apt-get install nginx" >&2; exit 2; }
# Each sidecar holds a few descriptors; 50+ of them and nginx need more than 1024.
ulimit -n 65536 2>/dev/null || true
exec python3 benches/fleet/fleet.py --binary "$bin" "$@"
