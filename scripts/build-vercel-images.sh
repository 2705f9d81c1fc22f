#!/usr/bin/env bash
# Builds the local root filesystem the Vercel emulator runs every sandbox on (see
# test/emulators/vercel/vercel-images.ts), cached and idempotent:
#   <dir>/default   what Vercel's sandbox image promises, on Debian: the rootfs of
#                   scripts/build-rootfs.sh plus the Node.js runtime (node, npm, npx, corepack: the
#                   host's own Node.js, copied, as no registry image is reachable offline), the
#                   Python runtime (python3, `python`, pip), git, sudo, socat, procps, tar, gzip;
#                   the working directory /vercel/sandbox, owned by the default user
#                   `vercel-sandbox` (uid 1000, home /home/vercel-sandbox) who has passwordless sudo
#   bash scripts/build-vercel-images.sh [dir]   default: /var/cache/sandport/rootfs/vercel
# Needs root (chroot; the packages come from the apt mirror this machine's apt sources name).
# The image is rebuilt only when this script, the Debian base or the host's Node.js changed (the
# key is in `<dir>/default/.sandport-complete`); a current one costs a stat and a hash. Prints the
# directory.
set -euo pipefail
target="${1:-${SANDPORT_VERCEL_IMAGES_DIR:-/var/cache/sandport/rootfs/vercel}}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building the Vercel emulator's image needs root (chroot). Run: sudo bash $0 $target" >&2
  exit 1
fi
node_bin="$(command -v node)"
node_root="$(dirname "$(dirname "$(readlink -f "$node_bin")")")"
if [ ! -d "$node_root/lib/node_modules/npm" ]; then
  echo "sandport: the Vercel emulator's image copies the host's Node.js and npm; no npm next to $node_bin" >&2
  exit 1
fi
base="$(bash "$here/build-rootfs.sh")"
# The cache key: this script, the base's completion stamp (a rebuilt base gets a new one) and the
# Node.js version copied in.
key="$( (cat "${BASH_SOURCE[0]}"; stat -c %Y "$base/.sandport-complete"; "$node_bin" --version) | sha256sum | cut -c1-16)"
mkdir -p "$target"

# Runs `build <staging dir>` unless `$target/$name` was already built with this key; one build
# at a time, and whoever waited for the lock finds the image current.
cached() {
  local name="$1" build="$2" staging="$target/$1.partial"
  if [ "$(cat "$target/$name/.sandport-complete" 2>/dev/null)" = "$key" ]; then return 0; fi
  exec 9>"$target/$name.lock"
  flock 9
  if [ "$(cat "$target/$name/.sandport-complete" 2>/dev/null)" = "$key" ]; then exec 9>&-; return 0; fi
  echo "sandport: building the Vercel emulator's $name image in $target/$name" >&2
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

# Beyond the Debian base (bash, coreutils, findutils, tar, gzip, curl, inotify-tools):
packages="python3 python3-pip python-is-python3 git sudo procps socat ca-certificates libstdc++6"

build_default() {
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
  # Node.js: the host's binary (glibc and libstdc++ are the base's, same Debian release) and its
  # npm and corepack, with the links the Debian and upstream packages make.
  install -m 0755 "$(readlink -f "$node_bin")" "$dir/usr/bin/node"
  mkdir -p "$dir/usr/lib/node_modules"
  cp -a "$node_root/lib/node_modules/npm" "$dir/usr/lib/node_modules/npm"
  if [ -d "$node_root/lib/node_modules/corepack" ]; then
    cp -a "$node_root/lib/node_modules/corepack" "$dir/usr/lib/node_modules/corepack"
    ln -sf ../lib/node_modules/corepack/dist/corepack.js "$dir/usr/bin/corepack"
  fi
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/bin/npx"
  # Vercel's default user, in the sudo group with passwordless sudo, and its working directory.
  chroot "$dir" useradd --create-home --uid 1000 --user-group --shell /bin/bash --groups sudo vercel-sandbox
  printf 'vercel-sandbox ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$dir/etc/sudoers.d/vercel-sandbox"
  mkdir -p "$dir/vercel/sandbox"
  chroot "$dir" chown vercel-sandbox:vercel-sandbox /vercel/sandbox
  # The local sandbox maps one uid, root, without capabilities: every command already runs as
  # root, and sudo works as long as it changes nothing. It reads sudoers as root (its default
  # reads a group-readable sudoers as uid 1, which is not mapped), and keeps the group vector
  # (setgroups is denied in the sandbox's user namespace). `sudo -u <user>` fails there.
  printf '# sandport: the local sandbox has no uid but root\nDefaults preserve_groups\n' >"$dir/etc/sudoers.d/sandport"
  printf 'Plugin sudoers_policy sudoers.so sudoers_mode=0400\nSet disable_coredump false\n' >"$dir/etc/sudo.conf"
  chmod 0400 "$dir/etc/sudoers" "$dir"/etc/sudoers.d/*
  # The local sandbox's host name, so that sudo resolves it without a warning.
  printf '127.0.0.1 localhost\n127.0.1.1 sandbox\n::1 localhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  : >"$dir/etc/resolv.conf"
}

cached default build_default
echo "$target"
