#!/usr/bin/env bash
# Builds a minimal Debian root filesystem with debootstrap (no registry needed), cached.
#   bash scripts/build-rootfs.sh [target-dir]    default: /var/cache/sandport/rootfs/bookworm
#   bash scripts/build-rootfs.sh --stamp         prints what a current rootfs records, builds nothing
# The mirror is read from this machine's apt sources at run time. Prints the directory on stdout.
# Packages beyond minbase: inotify-tools (files.watch runs inotifywait inside the sandbox), curl and
# ca-certificates (the network tests, egress allowlists among them, need a real HTTP client).
# `.sandport-complete` records the suite and the package list: a rootfs built with another list
# (an older one without inotify-tools, say) is rebuilt, and swapped in only once complete.
set -euo pipefail
suite="${SANDPORT_ROOTFS_SUITE:-bookworm}"
packages="inotify-tools curl ca-certificates"
stamp="suite=$suite packages=$packages"
if [ "${1:-}" = "--stamp" ]; then echo "$stamp"; exit 0; fi
target="${1:-${SANDPORT_ROOTFS_DIR:-/var/cache/sandport/rootfs/bookworm}}"
if [ -f "$target/.sandport-complete" ] && [ "$(cat "$target/.sandport-complete")" = "$stamp" ]; then echo "$target"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building a rootfs needs root (debootstrap). Run: sudo bash $0 $target" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends debootstrap >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends debootstrap >&2; }
fi
mkdir -p "$(dirname "$target")"
# One build at a time (another script may build the same rootfs meanwhile): whoever waited
# finds it current.
exec 9>"$target.lock"
flock 9
if [ -f "$target/.sandport-complete" ] && [ "$(cat "$target/.sandport-complete")" = "$stamp" ]; then echo "$target"; exit 0; fi
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
echo "sandport: debootstrap $suite from the configured apt mirror into $target" >&2
debootstrap --variant=minbase --include="${packages// /,}" "$suite" "$staging" "$mirror" >&2
rm -rf "$staging"/var/cache/apt/archives/*.deb
echo "$stamp" > "$staging/.sandport-complete"
# A stale rootfs is moved aside before the new one takes its place, so the path is never half-built.
rm -rf "$target.stale"
if [ -e "$target" ]; then mv "$target" "$target.stale"; fi
mv "$staging" "$target"
rm -rf "$target.stale"
echo "$target"
