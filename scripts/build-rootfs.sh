#!/usr/bin/env bash
# Builds a minimal Debian root filesystem with debootstrap (no registry needed), cached.
#   bash scripts/build-rootfs.sh [target-dir]    default: /var/cache/sandport/rootfs/bookworm
# The mirror is read from this machine's apt sources at run time. Prints the directory on stdout.
set -euo pipefail
target="${1:-${SANDPORT_ROOTFS_DIR:-/var/cache/sandport/rootfs/bookworm}}"
suite="${SANDPORT_ROOTFS_SUITE:-bookworm}"
if [ -f "$target/.sandport-complete" ]; then echo "$target"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building a rootfs needs root (debootstrap). Run: sudo bash $0 $target" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends debootstrap >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends debootstrap >&2; }
fi
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "sandport: no Debian mirror found in the apt sources" >&2; exit 1; }
staging="$target.partial"
rm -rf "$staging"
mkdir -p "$(dirname "$target")"
echo "sandport: debootstrap $suite from the configured apt mirror into $target" >&2
debootstrap --variant=minbase "$suite" "$staging" "$mirror" >&2
rm -rf "$staging"/var/cache/apt/archives/*.deb
touch "$staging/.sandport-complete"
rm -rf "$target"
mv "$staging" "$target"
echo "$target"
