#!/usr/bin/env bash
# Scale of one snapshot (issue 12): compile time, resident memory once ready
# and peak resident memory through a reload, for gen_bundle.py bundles.
#
#   benches/load/snapshot_scale.sh [IAMGATE_BINARY] [POLICIES...]
#
# Defaults: target/release/iamgate, 10000 and 100000 policies (principals =
# policies / 10, as in the load benchmark). For each size: generate the
# bundle, start `iamgate serve` on it, read `compile_ms` from /v1/status and
# VmRSS from /proc once ready; then change the manifest's revision, send
# SIGHUP, wait for the new revision and read VmHWM (the peak over the whole
# run, which covers the reload holding the old and the new snapshot).
# Prints one JSON line per size; `peak_over_old_plus_new_mb` is the peak
# less twice the resident size once ready (the old snapshot and a new one
# of the same size), which the target keeps at or below 0.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
IAMGATE=${1:-$ROOT/target/release/iamgate}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/iamgate-scale.XXXXXX")
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

status() { curl -fsS "http://$1/v1/status"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

for n in "${SIZES[@]}"; do
    bundle=$WORK/bundle-$n
    python3 "$HERE/gen_bundle.py" "$bundle" --principals $((n / 10)) --policies "$n" > /dev/null
    "$IAMGATE" serve --bundle "$bundle" --no-watch \
        --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        > "$WORK/out" 2> "$WORK/err" &
    PID=$!
    for _ in $(seq 1 1200); do
        grep -q '"listening"' "$WORK/out" 2>/dev/null && break
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
        sleep 0.1
    done
    admin=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['listening']['admin'])" "$WORK/out")
    for _ in $(seq 1 1200); do
        [ "$(status "$admin" | field 'd["ready"]')" = True ] && break
        sleep 0.1
    done
    sleep 1
    st=$(status "$admin")
    compile_ms=$(echo "$st" | field 'round(d["compile_ms"])')
    statements=$(echo "$st" | field 'd["counts"]["statements"]')
    rss=$(kib "$PID" VmRSS)
    python3 - "$bundle/manifest.json" <<'EOF'
import json, sys
p = sys.argv[1]
try:
    m = json.load(open(p))
except FileNotFoundError:
    m = {}
m["revision"] = "scale-reload"
json.dump(m, open(p, "w"))
EOF
    kill -HUP "$PID"
    for _ in $(seq 1 1200); do
        status "$admin" | field 'd["revision"]' | grep -q '^scale-reload' && break
        sleep 0.1
    done
    sleep 1
    st=$(status "$admin")
    reload_ms=$(echo "$st" | field 'round(d["compile_ms"])')
    after=$(kib "$PID" VmRSS)
    peak=$(kib "$PID" VmHWM)
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    echo "{\"policies\": $n, \"statements\": $statements, \"compile_ms\": $compile_ms, \"reload_compile_ms\": $reload_ms, \"rss_ready_mb\": $((rss / 1024)), \"rss_after_reload_mb\": $((after / 1024)), \"peak_rss_mb\": $((peak / 1024)), \"peak_over_old_plus_new_mb\": $(((peak - 2 * rss) / 1024))}"
    rm -rf "$bundle"
done
