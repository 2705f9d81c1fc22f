#!/usr/bin/env bash
# Builds the local root filesystems the E2B emulator runs its templates on (see
# test/emulators/e2b/e2b-templates.ts), cached and idempotent:
#   <dir>/base   what E2B's `base` template promises: the Debian rootfs of scripts/build-rootfs.sh
#                plus bash, python3 and `python`, git, Node.js (Debian's), sudo, procps, socat, inotify-tools, util-linux
#                (`script`) and GNU coreutils/findutils; a default user `user` (uid 1000, home
#                /home/user, login shell bash) with passwordless sudo, and root
#   bash scripts/build-e2b-images.sh [dir]   default: /var/cache/sandport/rootfs/e2b
# Needs root (chroot; the packages come from the apt mirror this machine's apt sources name).
# An image is rebuilt only when this script or the Debian base it copies changed (the key is in
# `<dir>/<image>/.sandport-complete`); a current one costs a stat and a hash. Prints the directory.
set -euo pipefail
target="${1:-${SANDPORT_E2B_IMAGES_DIR:-/var/cache/sandport/rootfs/e2b}}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building the E2B emulator's images needs root (chroot). Run: sudo bash $0 $target" >&2
  exit 1
fi
base="$(bash "$here/build-rootfs.sh")"
# The cache key: this script and the base's completion stamp (a rebuilt base gets a new one).
key="$( (cat "${BASH_SOURCE[0]}"; stat -c %Y "$base/.sandport-complete") | sha256sum | cut -c1-16)"
mkdir -p "$target"

# Runs `build <staging dir>` unless `$target/$name` was already built with this key; one build
# at a time, and whoever waited for the lock finds the image current.
cached() {
  local name="$1" build="$2" staging="$target/$1.partial"
  if [ "$(cat "$target/$name/.sandport-complete" 2>/dev/null)" = "$key" ]; then return 0; fi
  exec 9>"$target/$name.lock"
  flock 9
  if [ "$(cat "$target/$name/.sandport-complete" 2>/dev/null)" = "$key" ]; then exec 9>&-; return 0; fi
  echo "sandport: building the E2B emulator's $name image in $target/$name" >&2
  rm -rf "$staging"
  "$build" "$staging"
  echo "$key" >"$staging/.sandport-complete"
  # The old image is moved aside before the new one takes its place, so the path is never half-built.
  rm -rf "$target/$name.stale"
  if [ -e "$target/$name" ]; then mv "$target/$name" "$target/$name.stale"; fi
  mv "$staging" "$target/$name"
  rm -rf "$target/$name.stale"
  exec 9>&-
}

# E2B's base template's userland. Packages beyond the Debian base (which has bash, coreutils,
# findutils, util-linux's `script`, and inotify-tools for files.watch). nodejs: E2B's base
# template has Node (templates built FROM it run npm straight away), which the agent host runs
# on; Debian's npm (hundreds of packages) is left out: nothing here installs with it.
packages="python3 python-is-python3 git nodejs sudo procps socat ca-certificates"

build_base() {
  local dir="$1"
  cp -a "$base" "$dir"
  rm -f "$dir/.sandport-complete"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # No daemons may start in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null" >&2
  rm -f "$dir/usr/sbin/policy-rc.d"
  # E2B's default user: uid 1000, in the sudo group, passwordless sudo.
  chroot "$dir" useradd --create-home --uid 1000 --user-group --shell /bin/bash --groups sudo user
  printf 'user ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$dir/etc/sudoers.d/user"
  # The local sandbox maps one uid, root, without capabilities: every command already runs as
  # root, and sudo works as long as it changes nothing. It reads sudoers as root (its default
  # reads a group-readable sudoers as uid 1, which is not mapped), and keeps the group vector
  # (setgroups is denied in the sandbox's user namespace). `sudo -u user` fails there.
  printf '# sandport: the local sandbox has no uid but root\nDefaults preserve_groups\n' >"$dir/etc/sudoers.d/sandport"
  printf 'Plugin sudoers_policy sudoers.so sudoers_mode=0400\nSet disable_coredump false\n' >"$dir/etc/sudo.conf"
  chmod 0400 "$dir/etc/sudoers" "$dir"/etc/sudoers.d/*
  # The local sandbox's host name, so that sudo resolves it without a warning.
  printf '127.0.0.1 localhost\n127.0.1.1 sandbox\n::1 localhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  : >"$dir/etc/resolv.conf"
}

cached base build_base
echo "$target"
