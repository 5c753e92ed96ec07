#!/usr/bin/env bash
# Load benchmark: `iamgate serve` against a null ext_authz server that
# answers OK without deciding and a floor that answers OK without reading
# anything (both examples/null_ext_authz.rs), side by side in one run, on a
# generated 1,000-principal / 10,000-policy bundle.
#
#   benches/load/run.sh
#
# 1. installs h2load (nghttp2-client) and wrk with apt if missing, and a
#    grpcio venv (target/load-venv) for the response checks;
# 2. generates the bundle (benches/load/gen_bundle.py, deterministic);
# 3. builds `--release` iamgate and the null server;
# 4. encodes an Envoy CheckRequest (benches/load/check_request.py), checks
#    with grpcio that iamgate answers it OK/allowed (and denies a variant)
#    and that the null server and the floor answer OK;
# 5. waits (up to WAIT_QUIET s) for a quiet machine (1-minute load average
#    below MAX_LOAD and under MAX_BUSY % CPU busy over 3 s; before each
#    run, up to RUN_WAIT_QUIET s for the CPU test alone), then runs
#    h2load against the floor (`--floor`: iamgate's connection loop, a
#    prebuilt OK, nothing read), the null server (envoy-types' tonic
#    service: decodes the whole CheckRequest), iamgate and (diagnostic, SIZED_BASELINE)
#    the null server on iamgate's transport (its tonic settings, no
#    vectored writes) padding its answers to iamgate's answer size: ROUNDS
#    rounds in alternating order, each server pinned to SERVER_CPU and the
#    load generator to CLIENT_CPU; then the same with wrk for
#    `POST /v1/authorize` (the null HTTP server, which reads and parses the
#    body as iamgate does and answers a fixed JSON, vs iamgate);
# 6. prints a markdown summary (also written to target/load-report.md) with
#    PASS/FAIL against the targets (issue 12): >= 90% of the floor's Check
#    throughput with p99 <= 1.2x its p99, and >= 90% of the null HTTP
#    server's throughput; iamgate against the null server is reported too.
#
# With SIGNED=1 (the default) the gRPC rounds also measure `iamgate-sigv4`
# (issue 13): the same iamgate process, the same call on a generic SigV4
# route (`iamgate.auth: sigv4`), signed with AWS Signature Version 4 by an
# access key from a credentials file this script writes (`--credentials`),
# with a forwarded JSON body whose payload hash is verified; no principal
# header, the caller comes from the signature. The request is re-signed
# (and re-checked with grpcio) right before each of its rows, so the
# 5-minute clock-skew rule holds however long the run. Target: >= 85% of
# the null server's throughput on the same signed request (`null-sigv4`:
# the null server decoding those bytes; iamgate-sigv4 / null on the
# unsigned request is reported too).
#
# With HAND=1 (the default) the HTTP rounds also measure `null-hand`: the
# null HTTP server routed by hand on hyper instead of through an axum
# `Router` as iamgate and `null` are (the body read and parsed by the same
# functions), on the same connection loop; not a target, it shows what
# routing the JSON surface through axum costs.
#
# With DECIDING=1 (the default) both protocols also measure a baseline
# that decides: `floor-decide` (the floor, also deciding the bench
# request, converted once at start, with iamgate's engine on every call)
# and `null-decide` (the null HTTP server, also converting the body it
# parsed and deciding it); both discard the decision and answer as before
# (`null_ext_authz --floor --decide BUNDLE REQUEST_JSON`, one process).
# That is the least any server deciding this request with iamgate's engine
# does on top of the floor or the null HTTP server, so their throughput is
# the most it can reach; not a target.
#
# Exit status: 0 PASS, 3 FAIL (targets missed), anything else: error.
# Knobs (environment): ROUNDS=3 CONNS=4 STREAMS=16 DURATION=10 WARMUP=2
# WRK_CONNS=64 WRK_DURATION=8 SERVER_CPU=0 CLIENT_CPU=1 MAX_LOAD=1.0
# MAX_BUSY=15 WAIT_QUIET=600 RUN_WAIT_QUIET=60 SIZED_BASELINE=1
# SKIP_WRK=0 SKIP_BUILD=0 SIGNED=1 HAND=1 DECIDING=1 SEED=7 PROFILE=release (debug: smoke runs of the
# script itself with `cargo build` binaries; its numbers mean nothing)
# KEEP=0 (1 keeps the work dir).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WRK_CONNS=${WRK_CONNS:-64}
WRK_DURATION=${WRK_DURATION:-8}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
MAX_LOAD=${MAX_LOAD:-1.0}
WAIT_QUIET=${WAIT_QUIET:-600}
RUN_WAIT_QUIET=${RUN_WAIT_QUIET:-60}
SKIP_WRK=${SKIP_WRK:-0}
SIZED_BASELINE=${SIZED_BASELINE:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
SIGNED=${SIGNED:-1}
HAND=${HAND:-1}
DECIDING=${DECIDING:-1}
KEEP=${KEEP:-0}
SEED=${SEED:-7}
PROFILE=${PROFILE:-release}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log() { printf '[load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ── tools ──────────────────────────────────────────────────────────────
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_pkgs=()
command -v h2load >/dev/null || need_pkgs+=(nghttp2-client)
command -v wrk >/dev/null || need_pkgs+=(wrk)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q "${need_pkgs[@]}" >&2 \
        || { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi
for t in h2load wrk taskset python3 curl; do
    command -v "$t" >/dev/null || die "$t not found"
done
VENV=$TARGET_DIR/load-venv
if ! "$VENV/bin/python" -c 'import grpc' 2>/dev/null; then
    log "creating $VENV with grpcio"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q grpcio >&2
fi
PY="$VENV/bin/python"

# `taskset -c CPU` when that CPU exists. An array, not a function, so that
# `"${SERVER_PIN[@]}" cmd &` gives the server's own PID in $! (taskset execs).
pin_for() { if [ "$(nproc --all)" -gt "$1" ]; then echo "taskset -c $1"; else echo "env"; fi; }
read -r -a SERVER_PIN <<< "$(pin_for "$SERVER_CPU")"
read -r -a CLIENT_PIN <<< "$(pin_for "$CLIENT_CPU")"
[ "$(nproc --all)" -ge 2 ] || log "warning: fewer than 2 CPUs; server and load generator share a core"

# ── work dir and cleanup ───────────────────────────────────────────────
WORK=$(mktemp -d "${TMPDIR:-/tmp}/iamgate-load.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ── bundle, build, request ─────────────────────────────────────────────
log "generating the bundle in $WORK/bundle"
python3 "$HERE/gen_bundle.py" "$WORK/bundle" --principals 1000 --policies 10000 --seed "$SEED" \
    > "$WORK/bench.json"
if [ "$SKIP_BUILD" != 1 ]; then
    log "building ($PROFILE) iamgate and examples/null_ext_authz"
    # The iamgate crate alone: the workspace's comparison crate
    # (benches/compare, cedar-policy and regorus) is not built.
    profile_flag=(--release)
    [ "$PROFILE" = release ] || profile_flag=()
    cargo build "${profile_flag[@]}" -p iamgate --bin iamgate --example null_ext_authz >&2
fi
[ "$PROFILE" = release ] || log "warning: PROFILE=$PROFILE: a smoke run, not a measurement"
IAMGATE=$TARGET_DIR/$PROFILE/iamgate
NULL=$TARGET_DIR/$PROFILE/examples/null_ext_authz
[ -x "$IAMGATE" ] && [ -x "$NULL" ] || die "binaries missing in $TARGET_DIR/$PROFILE"
python3 "$HERE/check_request.py" frame "$WORK/bench.json" "$WORK/check.bin" > "$WORK/frame.json"
python3 "$HERE/check_request.py" authorize "$WORK/bench.json" > "$WORK/authorize.json"
python3 "$HERE/check_request.py" credentials "$WORK/bench.json" "$WORK/credentials.json"
chmod 600 "$WORK/credentials.json"
sign_request() { # a fresh signature (X-Amz-Date now) for the SigV4 rows
    python3 "$HERE/check_request.py" signed "$WORK/bench.json" "$WORK/credentials.json" \
        "$WORK/check-sigv4.bin" > "$WORK/frame-sigv4.json"
}
sign_request

# ── servers ────────────────────────────────────────────────────────────
wait_listening() { # wait_listening NAME OUTFILE PID
    for _ in $(seq 1 300); do
        if grep -q '"listening"' "$2" 2>/dev/null; then return 0; fi
        kill -0 "$3" 2>/dev/null || { cat "$WORK/$1.err" >&2; die "$1 exited"; }
        sleep 0.1
    done
    die "$1 did not print its listening line"
}
addr() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['listening'][sys.argv[2]])" "$1" "$2"; }

log "starting iamgate serve (pinned to CPU $SERVER_CPU)"
# The load generator plays the trusted hop that sets the principal header.
"${SERVER_PIN[@]}" "$IAMGATE" serve --bundle "$WORK/bundle" --no-watch \
    --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --principal-header x-iamgate-principal --credentials "$WORK/credentials.json" \
    > "$WORK/iamgate.out" 2> "$WORK/iamgate.err" &
IAMGATE_PID=$!
PIDS+=("$IAMGATE_PID")
log "starting the null server (pinned to CPU $SERVER_CPU)"
"${SERVER_PIN[@]}" "$NULL" > "$WORK/null.out" 2> "$WORK/null.err" &
NULL_PID=$!
PIDS+=("$NULL_PID")
log "starting the floor (pinned to CPU $SERVER_CPU)"
"${SERVER_PIN[@]}" "$NULL" --floor > "$WORK/floor.out" 2> "$WORK/floor.err" &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
wait_listening iamgate "$WORK/iamgate.out" "$IAMGATE_PID"
wait_listening null "$WORK/null.out" "$NULL_PID"
wait_listening floor "$WORK/floor.out" "$FLOOR_PID"
declare -A GRPC HTTP PID
GRPC[iamgate]=$(addr "$WORK/iamgate.out" grpc)
HTTP[iamgate]=$(addr "$WORK/iamgate.out" http)
ADMIN=$(addr "$WORK/iamgate.out" admin)
GRPC[null]=$(addr "$WORK/null.out" grpc)
HTTP[null]=$(addr "$WORK/null.out" http)
GRPC[floor]=$(addr "$WORK/floor.out" grpc)
PID[iamgate]=$IAMGATE_PID
PID[null]=$NULL_PID
PID[floor]=$FLOOR_PID
curl -fsS "http://$ADMIN/v1/status" > "$WORK/status.json"

# ── correctness checks before measuring ────────────────────────────────
VERIFY_CALLS=200
log "checking responses with grpcio ($VERIFY_CALLS calls each)"
"$PY" "$HERE/check_request.py" verify "${GRPC[iamgate]}" "$WORK/check.bin" $VERIFY_CALLS --expect-allowed \
    > "$WORK/verify.json" || { cat "$WORK/verify.json" >&2; die "iamgate does not answer the bench CheckRequest with OK/allowed"; }
cat "$WORK/verify.json" >&2
RESPONSE_BYTES=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['sample']['response_bytes'])" "$WORK/verify.json")
"$PY" "$HERE/check_request.py" verify "${GRPC[iamgate]}" "$WORK/check.deny.bin" 20 --expect-denied >&2 \
    || die "iamgate does not deny the other-team variant"
"$PY" "$HERE/check_request.py" verify "${GRPC[null]}" "$WORK/check.bin" $VERIFY_CALLS >&2 \
    || die "the null server does not answer OK"
"$PY" "$HERE/check_request.py" verify "${GRPC[floor]}" "$WORK/check.bin" $VERIFY_CALLS >&2 \
    || die "the floor does not answer OK"
if [ "$SIGNED" = 1 ]; then
    "$PY" "$HERE/check_request.py" verify "${GRPC[iamgate]}" "$WORK/check-sigv4.bin" $VERIFY_CALLS --expect-allowed \
        > "$WORK/verify-sigv4.json" || { cat "$WORK/verify-sigv4.json" >&2; die "iamgate does not allow the SigV4-signed CheckRequest"; }
    cat "$WORK/verify-sigv4.json" >&2
    "$PY" "$HERE/check_request.py" verify "${GRPC[iamgate]}" "$WORK/check-sigv4.tampered.bin" 20 --expect-denied >&2 \
        || die "iamgate does not deny the signed request with a body changed after signing"
    "$PY" "$HERE/check_request.py" verify "${GRPC[null]}" "$WORK/check-sigv4.bin" 20 >&2 \
        || die "the null server does not answer the signed request OK"
fi
curl -fsS -H 'content-type: application/json' --data-binary @"$WORK/authorize.json" \
    "http://${HTTP[null]}/v1/authorize" | grep -q '"decision":"allowed"' \
    || die "the null HTTP server does not parse the bench request"
curl -sS -o /dev/null -w '%{http_code}' -H 'content-type: application/json' --data-binary '{"action": 1}' \
    "http://${HTTP[null]}/v1/authorize" | grep -q '^400$' \
    || die "the null HTTP server does not refuse a body iamgate refuses"
HTTP_SERVERS="null iamgate"
if [ "$HAND" = 1 ] && [ "$SKIP_WRK" != 1 ]; then
    log "starting null-hand: the null HTTP server routed by hand (pinned to CPU $SERVER_CPU)"
    "${SERVER_PIN[@]}" "$NULL" --hand > "$WORK/null-hand.out" 2> "$WORK/null-hand.err" &
    PID[null-hand]=$!
    PIDS+=("${PID[null-hand]}")
    wait_listening null-hand "$WORK/null-hand.out" "${PID[null-hand]}"
    HTTP[null-hand]=$(addr "$WORK/null-hand.out" http)
    curl -fsS -H 'content-type: application/json' --data-binary @"$WORK/authorize.json" \
        "http://${HTTP[null-hand]}/v1/authorize" | grep -q '"decision":"allowed"' \
        || die "null-hand does not parse the bench request"
    HTTP_SERVERS="null null-hand iamgate"
fi
if [ "$DECIDING" = 1 ]; then
    log "starting floor-decide / null-decide: the floor and the null HTTP server, deciding (pinned to CPU $SERVER_CPU)"
    "${SERVER_PIN[@]}" "$NULL" --floor --decide "$WORK/bundle" "$WORK/authorize.json" \
        > "$WORK/decide.out" 2> "$WORK/decide.err" &
    PID[floor-decide]=$!
    PID[null-decide]=${PID[floor-decide]}
    PIDS+=("${PID[floor-decide]}")
    wait_listening decide "$WORK/decide.out" "${PID[floor-decide]}"
    GRPC[floor-decide]=$(addr "$WORK/decide.out" grpc)
    HTTP[null-decide]=$(addr "$WORK/decide.out" http)
    "$PY" "$HERE/check_request.py" verify "${GRPC[floor-decide]}" "$WORK/check.bin" 20 >&2 \
        || die "floor-decide does not answer OK"
    curl -fsS -H 'content-type: application/json' --data-binary @"$WORK/authorize.json" \
        "http://${HTTP[null-decide]}/v1/authorize" | grep -q '"decision":"allowed"' \
        || die "null-decide does not answer the bench request"
    # It decides: an action iamgate's validation refuses is refused (the
    # null server, which does not decide, answers it).
    python3 -c "import json,sys; b=json.load(open(sys.argv[1])); b['action']='ec2:'; print(json.dumps(b))" \
        "$WORK/authorize.json" > "$WORK/authorize.bad-action.json"
    curl -sS -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary @"$WORK/authorize.bad-action.json" "http://${HTTP[null-decide]}/v1/authorize" \
        | grep -q '^400$' || die "null-decide does not validate what it decides"
    GRPC_SERVERS_DECIDE=floor-decide
    HTTP_SERVERS="null null-decide ${HTTP_SERVERS#null }"
fi
curl -fsS -H 'content-type: application/json' --data-binary @"$WORK/authorize.json" \
    "http://${HTTP[iamgate]}/v1/authorize" > "$WORK/authorize.out"
grep -q '"decision":"allowed"' "$WORK/authorize.out" \
    || die "iamgate HTTP does not allow the bench request: $(cat "$WORK/authorize.out")"

# A diagnostic third gRPC server: the null server on iamgate's transport
# (its tonic settings and writes without vectored I/O) padding its OK answer
# to the size of iamgate's allow. Not a target; it separates what the
# transport and a larger answer cost from what mapping, deciding and
# telemetry cost.
GRPC_SERVERS="floor ${GRPC_SERVERS_DECIDE:-} null iamgate"
if [ "$SIZED_BASELINE" = 1 ]; then
    log "starting null-sized: the null server on iamgate's transport answering $RESPONSE_BYTES-byte OKs"
    "${SERVER_PIN[@]}" "$NULL" --response-bytes "$RESPONSE_BYTES" --iamgate-transport --no-vectored-writes \
        > "$WORK/null-sized.out" 2> "$WORK/null-sized.err" &
    PID[null-sized]=$!
    PIDS+=("${PID[null-sized]}")
    wait_listening null-sized "$WORK/null-sized.out" "${PID[null-sized]}"
    GRPC[null-sized]=$(addr "$WORK/null-sized.out" grpc)
    "$PY" "$HERE/check_request.py" verify "${GRPC[null-sized]}" "$WORK/check.bin" 20 > "$WORK/verify-sized.json" \
        || die "null-sized does not answer OK"
    python3 -c "import json,sys; n=json.load(open(sys.argv[1]))['sample']['response_bytes']; sys.exit(n != int(sys.argv[2]))" \
        "$WORK/verify-sized.json" "$RESPONSE_BYTES" || die "null-sized answers are not $RESPONSE_BYTES bytes"
    GRPC_SERVERS="floor ${GRPC_SERVERS_DECIDE:-} null null-sized iamgate"
fi
if [ "$SIGNED" = 1 ]; then
    # The same processes; rows of their own for the signed request: the
    # null server decoding it (the baseline doing the same input) and
    # iamgate verifying it.
    GRPC[null-sigv4]=${GRPC[null]}
    PID[null-sigv4]=${PID[null]}
    GRPC[iamgate-sigv4]=${GRPC[iamgate]}
    PID[iamgate-sigv4]=${PID[iamgate]}
    GRPC_SERVERS="$GRPC_SERVERS null-sigv4 iamgate-sigv4"
fi

# ── wait for a quiet machine ───────────────────────────────────────────
# Quiet: 1-minute load average below MAX_LOAD and, over 3 s, less than
# MAX_BUSY % of all CPUs busy (a compile that just started does not show in
# the load average yet).
busy_pct() {
    local a b
    read -r -a a < /proc/stat
    sleep 3
    read -r -a b < /proc/stat
    awk -v u0="${a[1]}" -v n0="${a[2]}" -v s0="${a[3]}" -v i0="${a[4]}" -v w0="${a[5]}" \
        -v q0="${a[6]}" -v r0="${a[7]}" -v t0="${a[8]}" \
        -v u1="${b[1]}" -v n1="${b[2]}" -v s1="${b[3]}" -v i1="${b[4]}" -v w1="${b[5]}" \
        -v q1="${b[6]}" -v r1="${b[7]}" -v t1="${b[8]}" 'BEGIN {
            busy = (u1-u0) + (n1-n0) + (s1-s0) + (q1-q0) + (r1-r0) + (t1-t0)
            idle = (i1-i0) + (w1-w0)
            printf "%d\n", (busy + idle) ? 100 * busy / (busy + idle) : 0 }'
}
MAX_BUSY=${MAX_BUSY:-15}
wait_quiet() { # wait_quiet MAX_SECONDS [with-load]: sets $busy and $la
    local limit=$1 with_load=${2:-} waited=0
    while :; do
        la=$(cut -d' ' -f1 /proc/loadavg)
        busy=$(busy_pct)
        if [ "$busy" -lt "$MAX_BUSY" ] && { [ -z "$with_load" ] \
            || awk -v a="$la" -v m="$MAX_LOAD" 'BEGIN { exit !(a < m) }'; }; then
            return 0
        fi
        if [ "$waited" -ge "$limit" ]; then
            log "warning: machine still busy after ${waited}s (load average $la, CPUs $busy% busy); measuring anyway"
            return 0
        fi
        [ $((waited % 60)) -eq 0 ] && log "waiting for a quiet machine: load average $la, CPUs $busy% busy (< $MAX_BUSY% wanted)"
        sleep 2
        waited=$((waited + 5))
    done
}
wait_quiet "$WAIT_QUIET" with-load
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg) (CPUs ${busy}% busy)"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
metric_sum() { # metric_sum FILE AWK-REGEX
    awk -v re="$2" '$0 ~ re { s += $NF } END { printf "%d\n", s }' "$1"
}

# ── gRPC: h2load ───────────────────────────────────────────────────────
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
H2LOAD_ARGS=(-c "$CONNS" -m "$STREAMS" -t 1 -D "$DURATION" --warm-up-time="$WARMUP"
    -H 'content-type: application/grpc' -H 'te: trailers')
curl -fsS "http://$ADMIN/metrics" > "$WORK/metrics.before"
order() { # order ROUND SERVERS...: as given in odd rounds, reversed in even ones
    local round=$1; shift
    if [ $((round % 2)) -eq 1 ]; then echo "$@"; else printf '%s\n' "$@" | tac | tr '\n' ' '; fi
}
for round in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    for server in $(order "$round" $GRPC_SERVERS); do
        out=$WORK/h2load-$server-$round
        request=$WORK/check.bin
        case $server in
        iamgate-sigv4)
            sign_request
            "$PY" "$HERE/check_request.py" verify "${GRPC[$server]}" "$WORK/check-sigv4.bin" 5 --expect-allowed \
                > /dev/null || die "iamgate does not allow the re-signed request"
            request=$WORK/check-sigv4.bin ;;
        null-sigv4)
            request=$WORK/check-sigv4.bin ;;
        esac
        wait_quiet "$RUN_WAIT_QUIET"
        # Server CPU over the measured phase only (after the warm-up).
        ( sleep "$WARMUP"; cpu_ticks "${PID[$server]}" > "$out.t0" ) &
        sampler=$!
        "${CLIENT_PIN[@]}" h2load "${H2LOAD_ARGS[@]}" -d "$request" --log-file="$out.log" \
            "http://${GRPC[$server]}/envoy.service.auth.v3.Authorization/Check" > "$out.txt"
        t1=$(cpu_ticks "${PID[$server]}")
        wait "$sampler"
        t0=$(cat "$out.t0")
        python3 "$HERE/report.py" h2load "$out.txt" "$out.log" $((t1 - t0)) \
            | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(proto='grpc', server='$server', round=$round, busy_before=$busy); print(json.dumps(r))" \
            >> "$RESULTS"
        rm -f "$out.log"
        log "gRPC round $round $server: $(tail -1 "$RESULTS")"
    done
done
curl -fsS "http://$ADMIN/metrics" > "$WORK/metrics.after"
allowed_re='^iamgate_decisions_total\{decision="allowed",frontend="ext_authz"\}'
other_re='^iamgate_(decisions_total\{decision="(explicitDeny|implicitDeny)",frontend="ext_authz"\}|request_errors_total\{frontend="ext_authz")'
ALLOWED_DELTA=$(( $(metric_sum "$WORK/metrics.after" "$allowed_re") - $(metric_sum "$WORK/metrics.before" "$allowed_re") ))
OTHER_DELTA=$(( $(metric_sum "$WORK/metrics.after" "$other_re") - $(metric_sum "$WORK/metrics.before" "$other_re") ))

# ── HTTP/JSON: wrk ─────────────────────────────────────────────────────
WRK_ARGS=(-t 1 -c "$WRK_CONNS" -d "${WRK_DURATION}s" -s "$HERE/authorize.lua")
if [ "$SKIP_WRK" != 1 ]; then
    export IAMGATE_WRK_BODY=$WORK/authorize.json
    # shellcheck disable=SC2086
    for server in $HTTP_SERVERS; do # warm-up, not measured
        IAMGATE_WRK_OUT=$WORK/wrk-warmup.json "${CLIENT_PIN[@]}" wrk -t 1 -c "$WRK_CONNS" -d 2s \
            -s "$HERE/authorize.lua" "http://${HTTP[$server]}/v1/authorize" > /dev/null
    done
    for round in $(seq 1 "$ROUNDS"); do
        # shellcheck disable=SC2086
        for server in $(order "$round" $HTTP_SERVERS); do
            out=$WORK/wrk-$server-$round
            wait_quiet "$RUN_WAIT_QUIET"
            t0=$(cpu_ticks "${PID[$server]}")
            IAMGATE_WRK_OUT=$out.json "${CLIENT_PIN[@]}" wrk "${WRK_ARGS[@]}" \
                "http://${HTTP[$server]}/v1/authorize" > "$out.txt"
            t1=$(cpu_ticks "${PID[$server]}")
            python3 "$HERE/report.py" wrk "$out.json" $((t1 - t0)) \
                | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(proto='http', server='$server', round=$round, busy_before=$busy); print(json.dumps(r))" \
                >> "$RESULTS"
            log "HTTP round $round $server: $(tail -1 "$RESULTS")"
        done
    done
fi

# ── report ─────────────────────────────────────────────────────────────
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || GIT_REV="$GIT_REV+changes"
python3 - "$WORK" > "$WORK/env.json" <<EOF
import json, os, platform, sys, datetime
w = sys.argv[1]
status = json.load(open(os.path.join(w, "status.json")))
bench = json.load(open(os.path.join(w, "bench.json")))
frame = json.load(open(os.path.join(w, "frame.json")))
signed = json.load(open(os.path.join(w, "frame-sigv4.json")))
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
print(json.dumps({
    "command": "benches/load/run.sh",
    "git": "$GIT_REV",
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
    "loadavg_before": "$LOAD_BEFORE",
    "server_cpu": "$SERVER_CPU", "client_cpu": "$CLIENT_CPU",
    "seed": $SEED,
    "profile": "$PROFILE",
    "counts": status["counts"], "compile_ms": status.get("compile_ms", 0),
    "principal": bench["principal"],
    "check_bytes": frame["bytes"], "header_count": frame["headers"],
    "signed": "$SIGNED" == "1",
    "signed_check_bytes": signed["bytes"], "signed_header_count": signed["headers"],
    "verify_calls": $VERIFY_CALLS,
    "response_bytes": $RESPONSE_BYTES,
    "grpc_allowed_delta": $ALLOWED_DELTA, "grpc_other_delta": $OTHER_DELTA,
    "inflight": "$((CONNS * STREAMS)) gRPC / $WRK_CONNS HTTP",
    "h2load_cmd": "h2load -c $CONNS -m $STREAMS -t 1 -D $DURATION --warm-up-time=$WARMUP -H 'content-type: application/grpc' -H 'te: trailers' -d check.bin http://ADDR/envoy.service.auth.v3.Authorization/Check",
    "wrk_cmd": "wrk -t 1 -c $WRK_CONNS -d ${WRK_DURATION}s -s benches/load/authorize.lua http://ADDR/v1/authorize (after a 2 s warm-up)",
}))
EOF
mkdir -p "$TARGET_DIR"
set +e
python3 "$HERE/report.py" markdown "$RESULTS" "$WORK/env.json" > "$TARGET_DIR/load-report.md"
verdict=$?
set -e
[ "$verdict" -eq 0 ] || [ "$verdict" -eq 3 ] || die "report failed"
cat "$TARGET_DIR/load-report.md"
log "report written to $TARGET_DIR/load-report.md"
exit "$verdict"
