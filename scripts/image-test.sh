#!/usr/bin/env bash
# The container image, tested offline: installs buildah (apt) if missing,
# builds the release binary the way the Dockerfile's builder stage does
# (statically linked, so the distroless/static runtime needs no libc), then
# builds the runtime stage with buildah, checks its configuration and files,
# and runs it under its constraints (scripts/image_test.py). Idempotent; the
# release build is incremental under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v buildah >/dev/null 2>&1; then
  echo "==> installing buildah (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq buildah; }; then
    echo "buildah could not be installed: the image test checks the runtime files without it"
  fi
fi

triple="$(uname -m)-unknown-linux-gnu"
echo "==> cargo build --release --target $triple (crt-static, as the Dockerfile's builder)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --locked --target "$triple" --bin iamgate

exec python3 scripts/image_test.py "target/$triple/release/iamgate" target/image
