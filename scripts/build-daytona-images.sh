#!/usr/bin/env bash
# Builds the local root filesystem the Daytona emulator creates sandboxes on when no snapshot or
# image is named (see test/emulators/daytona/daytona-images.ts), cached and idempotent:
#   <dir>/default   what Daytona's default snapshot promises: the Debian rootfs of
#                   scripts/build-rootfs.sh plus bash, python3 and `python`, pip, git, curl, sudo,
#                   procps, socat, inotify-tools, Node.js (Debian's, 18) and GNU coreutils/findutils; a non-root default user `daytona`
#                   (uid 1000, home /home/daytona, login shell bash) with passwordless sudo, and root
#   bash scripts/build-daytona-images.sh [dir]   default: /var/cache/sandport/rootfs/daytona
# Needs root (chroot; the packages come from the apt mirror this machine's apt sources name).
# The image is rebuilt only when this script or the Debian base it copies changed (the key is in
# `<dir>/default/.sandport-complete`); a current one costs a stat and a hash. Prints the directory.
set -euo pipefail
target="${1:-${SANDPORT_DAYTONA_IMAGES_DIR:-/var/cache/sandport/rootfs/daytona}}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building the Daytona emulator's image needs root (chroot). Run: sudo bash $0 $target" >&2
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
  echo "sandport: building the Daytona emulator's $name image in $target/$name" >&2
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

# Daytona's default snapshot's userland, as far as the docs promise it (Python with pip, git, a
# shell, sudo for the default user). socat relays preview-link traffic to the sandbox's ports.
# inotify-tools: the adapter's files.watch runs inotifywait inside the sandbox (Daytona has no
# watch API); named here even though the base rootfs has it, since this image promises it.
# nodejs: Daytona's default image has Node, which the agent host (startAgentHost) runs on.
packages="python3 python-is-python3 python3-pip git curl sudo procps socat ca-certificates inotify-tools nodejs"

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
  # Daytona's default user: uid 1000, in the sudo group, passwordless sudo.
  chroot "$dir" useradd --create-home --uid 1000 --user-group --shell /bin/bash --groups sudo daytona
  printf 'daytona ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$dir/etc/sudoers.d/daytona"
  # The local sandbox maps one uid, root, without capabilities: every command already runs as
  # root, and sudo works as long as it changes nothing. It reads sudoers as root (its default
  # reads a group-readable sudoers as uid 1, which is not mapped), and keeps the group vector
  # (setgroups is denied in the sandbox's user namespace). `sudo -u daytona` fails there.
  printf '# sandport: the local sandbox has no uid but root\nDefaults preserve_groups\n' >"$dir/etc/sudoers.d/sandport"
  printf 'Plugin sudoers_policy sudoers.so sudoers_mode=0400\nSet disable_coredump false\n' >"$dir/etc/sudo.conf"
  chmod 0400 "$dir/etc/sudoers" "$dir"/etc/sudoers.d/*
  # apt drops to its _apt user to download, which needs setgroups (denied there): download as root,
  # so that a Dockerfile's `RUN apt-get install` works in the emulator's builds.
  printf 'APT::Sandbox::User "root";\n' >"$dir/etc/apt/apt.conf.d/99sandport-no-sandbox-user"
  # The local sandbox's host name, so that sudo resolves it without a warning.
  printf '127.0.0.1 localhost\n127.0.1.1 sandbox\n::1 localhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  : >"$dir/etc/resolv.conf"
}

cached default build_default
echo "$target"
