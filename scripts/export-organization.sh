#!/usr/bin/env bash
# Exports the AWS Organization the current credentials can read (the
# management account, or a delegated administrator) into a bundle's
# `organization/` folder: one file per `aws organizations` call, verbatim,
# as iamgate reads it (README, "The organization"):
#
#   organization/describe-organization.json
#   organization/list-roots.json
#   organization/parents/<parent-id>/list-organizational-units-for-parent.json
#   organization/parents/<parent-id>/list-accounts-for-parent.json
#   organization/policies/<policy-id>/describe-policy.json
#   organization/policies/<policy-id>/list-targets-for-policy.json
#
# Usage: scripts/export-organization.sh BUNDLE_DIR
# Needs the AWS CLI (v1 or v2) and `organizations:Describe*`/`List*`.
# The usual AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL variables apply.
# The folder is written beside the old one and swapped in when complete, so
# a bundle being watched never sees half an organization.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUNDLE_DIR" >&2
  exit 2
fi
bundle=$1
if [ -e "$bundle/organization.json" ]; then
  echo "$0: $bundle/organization.json exists; a bundle holds organization.json or organization/, not both" >&2
  exit 2
fi
mkdir -p "$bundle"
# Hidden while being written: a bundle skips hidden entries.
tmp="$bundle/.organization.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/parents" "$tmp/policies"

export AWS_PAGER=""  # AWS CLI v2 would page the output
org() { aws organizations --output json "$@"; }
# Ids from a --query, one per line.
ids() { aws organizations --output text "$@" | tr '\t' '\n' | sed '/^$/d; /^None$/d'; }
# The `"Id": "PREFIX..."` values of a saved output (ids never hold quotes).
saved_ids() { { grep -o "\"Id\": \"$1[^\"]*\"" "$2" || true; } | sed 's/.*: "//; s/"$//'; }

org describe-organization >"$tmp/describe-organization.json"
org list-roots >"$tmp/list-roots.json"

# The tree, breadth first from the roots.
queue=$(saved_ids r- "$tmp/list-roots.json")
while [ -n "$queue" ]; do
  next=""
  for parent in $queue; do
    mkdir -p "$tmp/parents/$parent"
    org list-organizational-units-for-parent --parent-id "$parent" \
      >"$tmp/parents/$parent/list-organizational-units-for-parent.json"
    org list-accounts-for-parent --parent-id "$parent" \
      >"$tmp/parents/$parent/list-accounts-for-parent.json"
    next="$next $(saved_ids ou- "$tmp/parents/$parent/list-organizational-units-for-parent.json")"
  done
  queue=$(echo "$next" | xargs)
done

# SCPs and RCPs that are enabled on a root, with their targets.
types=$(ids list-roots --query 'Roots[].PolicyTypes[?Status==`ENABLED`].Type[]' | sort -u)
for type in $types; do
  case "$type" in
    SERVICE_CONTROL_POLICY | RESOURCE_CONTROL_POLICY) ;;
    *) continue ;;
  esac
  for policy in $(ids list-policies --filter "$type" --query 'Policies[].Id'); do
    mkdir -p "$tmp/policies/$policy"
    org describe-policy --policy-id "$policy" >"$tmp/policies/$policy/describe-policy.json"
    org list-targets-for-policy --policy-id "$policy" \
      >"$tmp/policies/$policy/list-targets-for-policy.json"
  done
done

rm -rf "$bundle/.organization.old.$$"
if [ -e "$bundle/organization" ]; then
  mv "$bundle/organization" "$bundle/.organization.old.$$"
fi
mv "$tmp" "$bundle/organization"
rm -rf "$bundle/.organization.old.$$"
trap - EXIT
echo "exported the organization into $bundle/organization/"
