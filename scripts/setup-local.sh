#!/usr/bin/env bash
# Installs what the local (bubblewrap) provider needs: bubblewrap, util-linux (nsenter, setpriv,
# unshare), slirp4netns (outbound network), socat (tunnels and host forwards), tar, and
# inotify-tools (files.watch runs inotifywait inside the sandbox, whose default image is this
# host's own filesystem).
# Idempotent and quick when everything is present. As root it installs from apt; otherwise it
# prints the exact command to run. `--quiet` prints nothing when nothing is missing.
set -euo pipefail
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1

declare -A package_of=([bwrap]=bubblewrap [nsenter]=util-linux [setpriv]=util-linux [unshare]=util-linux [slirp4netns]=slirp4netns [socat]=socat [tar]=tar [inotifywait]=inotify-tools)
missing=()
for binary in "${!package_of[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${package_of[$binary]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ $quiet = 1 ] || echo "sandport: local provider dependencies are installed"
  exit 0
fi
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(uname -s)" != Linux ]; then
  echo "sandport: the local provider needs Linux; on this system use the docker provider" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "sandport: missing ${packages}. Install them with:" >&2
  echo "  sudo apt-get install -y ${packages}" >&2
  exit 1
fi
echo "sandport: installing ${packages}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends ${packages} >/tmp/sandport-apt.log 2>&1; then
  apt-get update >>/tmp/sandport-apt.log 2>&1
  apt-get install -y --no-install-recommends ${packages} >>/tmp/sandport-apt.log 2>&1 || { cat /tmp/sandport-apt.log >&2; exit 1; }
fi
echo "sandport: installed ${packages}"
