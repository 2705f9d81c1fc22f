#!/usr/bin/env bash
# Builds the local root filesystems the Modal emulator gives registry tags (see
# test/emulators/modal/modal-registry-images.ts), cached and idempotent:
#   <dir>/python   the Debian rootfs of scripts/build-rootfs.sh plus python3 (and `python`), for `python:*`
#   <dir>/busybox  busybox (Debian's busybox-static) and its applets, for `alpine:*` (an Alpine
#                  image's userland is busybox; musl and apk are not there), plus util-linux's
#                  setpriv and its glibc, which the local provider runs every exec through
#   bash scripts/build-emulator-images.sh [dir]   default: /var/cache/sandport/rootfs/emulator
# Needs root (chroot, and the packages come from the apt mirror this machine is configured with).
# An image is rebuilt only when this script or the Debian base it copies changed. Prints the directory.
set -euo pipefail
target="${1:-${SANDPORT_EMULATOR_IMAGES_DIR:-/var/cache/sandport/rootfs/emulator}}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: building the emulator images needs root (chroot). Run: sudo bash $0 $target" >&2
  exit 1
fi
base="$(bash "$here/build-rootfs.sh")"
# The cache key: this script and the base's completion stamp (a rebuilt base gets a new one).
key="$( (cat "${BASH_SOURCE[0]}"; stat -c %Y "$base/.sandport-complete") | sha256sum | cut -c1-16)"
mkdir -p "$target"

# Runs `build <staging dir>` unless `$target/$name` was already built with this key.
cached() {
  local name="$1" build="$2" staging="$target/$1.partial"
  if [ "$(cat "$target/$name/.sandport-complete" 2>/dev/null)" = "$key" ]; then return 0; fi
  echo "sandport: building the emulator's $name image in $target/$name" >&2
  rm -rf "$staging"
  "$build" "$staging"
  echo "$key" >"$staging/.sandport-complete"
  rm -rf "$target/$name"
  mv "$staging" "$target/$name"
}

build_python() {
  local dir="$1"
  cp -a "$base" "$dir"
  rm -f "$dir/.sandport-complete"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # No daemons may start in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null' >&2
  rm -f "$dir/usr/sbin/policy-rc.d"
  # Docker's python images have `python` beside `python3`.
  ln -sf python3 "$dir/usr/bin/python"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  : >"$dir/etc/resolv.conf"
}

build_busybox() {
  local dir="$1" debs
  debs="$(mktemp -d)"
  # busybox-static is downloaded inside the Debian base, so the host's own package lists do not matter.
  cp -a "$base" "$debs/root"
  cp /etc/resolv.conf "$debs/root/etc/resolv.conf"
  chroot "$debs/root" sh -c 'cd /tmp && apt-get update -qq && apt-get download -qq busybox-static' >&2
  mkdir -p "$dir"
  dpkg-deb -x "$debs"/root/tmp/busybox-static_*.deb "$dir"
  rm -rf "$debs"
  mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,dev,sys,var/tmp}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"
  # Every applet as a symlink to busybox, as on Alpine; relative, so that the link resolves on
  # the host too (the local provider checks the image's /bin/sh there).
  chroot "$dir" /bin/busybox --install -s
  local link
  for link in "$dir"/sbin/* "$dir"/usr/bin/* "$dir"/usr/sbin/* "$dir"/bin/*; do
    [ -L "$link" ] || continue
    case "$link" in
      "$dir"/bin/*) ln -sfn busybox "$link" ;;
      "$dir"/sbin/*) ln -sfn ../bin/busybox "$link" ;;
      *) ln -sfn ../../bin/busybox "$link" ;;
    esac
  done
  # The local provider runs every exec through util-linux's setpriv (busybox's lacks
  # --bounding-set): Debian's, with the libraries it links, is the one thing beside busybox.
  rm -f "$dir/usr/bin/setpriv"
  cp -a "$base/usr/bin/setpriv" "$dir/usr/bin/setpriv"
  local lib
  for lib in $(chroot "$base" ldd /usr/bin/setpriv | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$base$lib" "$dir$lib"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$dir/etc/hosts"
  : >"$dir/etc/resolv.conf"
  rm -rf "$dir/usr/share/doc"
}

cached python build_python
cached busybox build_busybox
echo "$target"
