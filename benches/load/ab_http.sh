#!/usr/bin/env bash
# A/B of two `iamgate` binaries on `POST /v1/authorize` (HTTP/JSON), side by
# side in one run: both serve the load bench's generated bundle (1,000
# principals, 10,000 policies) pinned to CPU 0, and wrk (CPU 1) loads them
# in alternating rounds, so a slow stretch of the machine hits both.
#
#   benches/load/ab_http.sh BINARY_A BINARY_B
#
# Prints, per round: requests per second, the server's CPU time per request
# (user and system, from /proc/PID/stat), p50 and p99. Knobs: ROUNDS=4
# CONNS=64 DURATION=8. Needs wrk and taskset (benches/load/run.sh installs
# wrk).
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-4}; CONNS=${CONNS:-64}; DURATION=${DURATION:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/iamgate-ab.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
python3 "$HERE/gen_bundle.py" "$W/bundle" --principals 1000 --policies 10000 --seed 7 > "$W/bench.json"
python3 "$HERE/check_request.py" authorize "$W/bench.json" > "$W/authorize.json"
start() { # start BINARY NAME
    taskset -c 0 "$1" serve --bundle "$W/bundle" --no-watch --grpc-listen 127.0.0.1:0 \
        --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 > "$W/$2.out" 2> "$W/$2.err" &
    PIDS+=($!)
}
start "$A" a; PA=${PIDS[0]}
start "$B" b; PB=${PIDS[1]}
for _ in $(seq 1 300); do
    grep -q listening "$W/a.out" 2>/dev/null && grep -q listening "$W/b.out" 2>/dev/null && break
    sleep 0.2
done
addr() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['listening']['http'])" "$1"; }
HA=$(addr "$W/a.out"); HB=$(addr "$W/b.out")
export IAMGATE_WRK_BODY=$W/authorize.json
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
load() { # load ADDR SECONDS OUT
    IAMGATE_WRK_OUT=$3 taskset -c 1 wrk -t 1 -c "$CONNS" -d "${2}s" -s "$HERE/authorize.lua" \
        "http://$1/v1/authorize" > /dev/null
}
load "$HA" 2 "$W/warm.json"; load "$HB" 2 "$W/warm.json"
echo "A = $A"; echo "B = $B"
for r in $(seq 1 "$ROUNDS"); do
    order="a b"; [ $((r % 2)) = 0 ] && order="b a"
    for name in $order; do
        if [ "$name" = a ]; then h=$HA; p=$PA; else h=$HB; p=$PB; fi
        read -r u0 s0 <<< "$(ticks "$p")"
        load "$h" "$DURATION" "$W/$name-$r.json"
        read -r u1 s1 <<< "$(ticks "$p")"
        python3 - "$W/$name-$r.json" "$name" "$r" "$((u1 - u0))" "$((s1 - s0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); name, r = sys.argv[2].upper(), sys.argv[3]
user, system, hz = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
n = d["requests"]; rps = n / (d["duration_us"] / 1e6)
per = lambda t: t / hz * 1e6 / n
print(f"{name} round {r}: {rps:7.0f} req/s  cpu {per(user + system):5.1f} us/req "
      f"(user {per(user):4.1f}, system {per(system):4.1f})  p50 {d['p50_us']} us  p99 {d['p99_us']} us  "
      f"errors {d['errors_status'] + d['errors_connect'] + d['errors_read']}")
PY
    done
done
