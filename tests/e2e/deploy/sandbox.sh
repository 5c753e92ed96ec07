#!/bin/sh
# Runs a command the way a hardened service manager or container runtime
# would, as far as this machine allows: in a private mount namespace whose
# view of ROOT is read-only, WRITABLE (a host directory) bind-mounted
# read-write at the path given, then chroot, and as an unprivileged uid (no
# capabilities) with no_new_privs (systemd: DynamicUser, CapabilityBoundingSet=,
# NoNewPrivileges, ProtectSystem=strict; Kubernetes: runAsNonRoot,
# readOnlyRootFilesystem, drop ALL).
#
#   sandbox.sh ROOT UID WRITABLE:PATH|- COMMAND [ARGS...]
#
# ROOT `/` is the host as a systemd unit sees it, with empty /tmp, /home and
# /root (PrivateTmp, ProtectHome). Any other ROOT is an image's root file
# system, none of it writable, with what an OCI runtime always provides:
# /proc and the default devices in /dev (null, zero, full, random, urandom,
# tty); it must have /proc and /dev mount points, as a runtime would create
# them. SANDBOX_EXPOSE (space-separated host directories) stay visible,
# read-only, under ROOT `/` even below /tmp, /home or /root, as installed
# files would be. Needs root and unshare(CLONE_NEWNS).
set -eu
root=$1 uid=$2 writable=$3
shift 3
# An empty directory to build the view on (SANDBOX_VIEW, else a new one).
view=${SANDBOX_VIEW:-$(mktemp -d /tmp/iamgate-sandbox.XXXXXX)}
exec unshare --mount --propagation private sh -eu -c '
view=$1 root=$2 uid=$3 writable=$4 expose=$5
shift 5
mount --rbind "$root" "$view"
mount -o remount,bind,ro "$view"
if [ "$root" = "/" ]; then
  for d in tmp home root; do
    mount -t tmpfs -o mode=1777,size=16m tmpfs "$view/$d"
  done
  # Installed files stay visible, read-only, even where a checkout lives
  # under /tmp, /home or /root (a unit would run /usr/local/bin/iamgate).
  for d in $expose; do
    mkdir -p "$view$d"
    mount --bind "$d" "$view$d"
    mount -o remount,bind,ro "$view$d"
  done
else
  mount --rbind /proc "$view/proc"
  mount -t tmpfs -o mode=0755,size=64k tmpfs "$view/dev"
  for d in null zero full random urandom tty; do
    touch "$view/dev/$d"
    mount --bind "/dev/$d" "$view/dev/$d"
  done
fi
if [ "$writable" != "-" ]; then
  src=${writable%%:*} dst=${writable#*:}
  # The mount point may not exist in a read-only view: put a tmpfs on its
  # parent and create it there.
  parent=$(dirname "$dst")
  mount -t tmpfs -o mode=0755,size=1m tmpfs "$view$parent"
  mkdir -p "$view$dst"
  mount --bind "$src" "$view$dst"
fi
# setpriv and chroot are the host binaries (ROOT may have neither):
# no_new_privs, then chroot and switch to UID, which leaves no capability.
exec setpriv --no-new-privs chroot --userspec="$uid:$uid" --groups="$uid" "$view" "$@"
' sh "$view" "$root" "$uid" "$writable" "${SANDBOX_EXPOSE:-}" "$@"
