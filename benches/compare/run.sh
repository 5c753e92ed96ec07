#!/usr/bin/env bash
# iamgate against cedar-policy and regorus on the same generated scenario,
# each doing the same work, in one criterion run
# (benches/compare/benches/engines.rs):
#
#   benches/compare/run.sh [criterion options]
#   benches/compare/run.sh --warm-up-time 1 --measurement-time 3
#
# 1. lints the comparison crate (clippy -D warnings): the root's
#    `cargo clippy --all-targets` (CI) covers iamgate alone, so that CI never
#    builds cedar-policy or regorus; `cargo fmt --all` covers both crates;
# 2. runs the bench (release profile), which first checks that the three
#    engines agree on the scenario's requests;
# 3. prints the medians and the ratios to iamgate as a markdown table.
#
# Knobs (environment): IAMGATE_COMPARE_SIZES=1000 (comma-separated scenario
# sizes in identity policies, ten per user), SKIP_LINT=0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZES=${IAMGATE_COMPARE_SIZES:-1000}
export IAMGATE_COMPARE_SIZES=$SIZES

if [ "${SKIP_LINT:-0}" != 1 ]; then
    cargo clippy -p iamgate-compare --all-targets -- -D warnings
fi
cargo bench -p iamgate-compare --bench engines -- "$@"

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
python3 - "$TARGET_DIR/criterion/compare" "$SIZES" <<'PY'
import json, os, sys

root, sizes = sys.argv[1], [s.strip() for s in sys.argv[2].split(",")]
median = {}
for d in os.listdir(root):
    try:
        with open(os.path.join(root, d, "new", "benchmark.json")) as f:
            fid = json.load(f)["function_id"]
        with open(os.path.join(root, d, "new", "estimates.json")) as f:
            median[fid] = json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        continue

def fmt(ns):
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

print("| policies | policy sets | request | iamgate | cedar | regorus |")
print("|---:|---|---|---:|---:|---:|")
for n in sizes:
    for attach in ("per-principal", "one-set"):
        for req in ("allowed", "implicitDeny"):
            m = {e: median.get(f"{attach}/{e}/{req}/{n}") for e in ("iamgate", "cedar", "regorus")}
            if m["iamgate"] is None:
                continue
            cells = [fmt(m["iamgate"])]
            for e in ("cedar", "regorus"):
                v = m[e]
                if v is None:
                    cells.append("-")
                    continue
                r = v / m["iamgate"]
                cells.append(f"{fmt(v)} ({r:,.0f}×)" if r >= 10 else f"{fmt(v)} ({r:.1f}×)")
            print(f"| {int(n):,} | {attach} | {req} | " + " | ".join(cells) + " |")
PY
