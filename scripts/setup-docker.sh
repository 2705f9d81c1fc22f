#!/usr/bin/env bash
# Makes a Docker engine available for the docker provider's tests, and the local base image.
# - installs docker.io from apt when dockerd is missing (root only);
# - starts dockerd in the background when no engine answers, recording its pid in
#   /run/sandport-dockerd.pid so that scripts/stop-docker.sh stops only that engine;
# - imports the debootstrap rootfs (scripts/build-rootfs.sh) as sandport/base:bookworm, because
#   no registry is reachable here, and re-imports it when its label says it was built from another
#   package list. Idempotent; quick when everything is there.
# Without root and without an engine (or image) it prints what to do and exits 0, so the docker
# tests skip with that reason; with --strict (or SANDPORT_DOCKER_STRICT=1) it exits 1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."
strict="${SANDPORT_DOCKER_STRICT:-0}"
for argument in "$@"; do
  case "$argument" in
    --strict) strict=1 ;;
    *) echo "usage: $0 [--strict]" >&2; exit 2 ;;
  esac
done
# Prints the reason and what to run, then stops: with an error only when asked to be strict.
give_up() {
  echo "sandport: $1" >&2
  echo "sandport: to fix, run as root: sudo bash scripts/setup-docker.sh" >&2
  if [ "$strict" = 1 ]; then exit 1; fi
  echo "sandport: the docker tests will be skipped" >&2
  exit 0
}
pidfile=/run/sandport-dockerd.pid
image="${SANDPORT_DOCKER_BASE_IMAGE:-sandport/base:bookworm}"

engine_answers() { timeout 5 docker info >/dev/null 2>&1; }

if ! engine_answers; then
  if [ "$(id -u)" -ne 0 ]; then
    give_up "no Docker engine answers at ${DOCKER_HOST:-/var/run/docker.sock} (or this user may not use it: add it to the docker group, or start one with 'sudo systemctl start docker')"
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "sandport: installing docker.io" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends docker.io >/tmp/sandport-docker-apt.log 2>&1 || {
      apt-get update >>/tmp/sandport-docker-apt.log 2>&1
      apt-get install -y --no-install-recommends docker.io >>/tmp/sandport-docker-apt.log 2>&1 || { cat /tmp/sandport-docker-apt.log >&2; exit 1; }
    }
  fi
  echo "sandport: starting dockerd" >&2
  nohup dockerd >/tmp/sandport-dockerd.log 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    engine_answers && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then tail -20 /tmp/sandport-dockerd.log >&2; exit 1; fi
    sleep 0.5
  done
  engine_answers || { echo "sandport: dockerd did not answer in time" >&2; tail -20 /tmp/sandport-dockerd.log >&2; exit 1; }
fi

# The image records the rootfs stamp (suite and package list) in a label: an image imported from
# an older rootfs (one without inotify-tools, say) is re-imported from a current one.
stamp=$(bash scripts/build-rootfs.sh --stamp)
label=org.sandport.rootfs
current=$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)
if [ "$current" != "$stamp" ]; then
  [ "$(id -u)" -eq 0 ] || give_up "the base image $image is missing or stale (wanted: $stamp), and building it (debootstrap) needs root"
  rootfs=$(bash scripts/build-rootfs.sh)
  echo "sandport: importing $rootfs as $image ($stamp)" >&2
  tar -C "$rootfs" --exclude=./.sandport-complete -c . | docker import --change "LABEL $label=\"$stamp\"" - "$image" >/dev/null
fi
# The provider's cached builds (`{ base, commands }` images, tagged by their Dockerfile) inherit
# the base's label: one built over an older base is removed, so the next create rebuilds it.
for build in $(docker images --filter reference='sandport/build:*' --format '{{.Repository}}:{{.Tag}}'); do
  if [ "$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$build" 2>/dev/null || true)" != "$stamp" ]; then
    echo "sandport: removing $build, built over an older base image" >&2
    docker rmi "$build" >/dev/null || echo "sandport: could not remove $build (in use?)" >&2
  fi
done
echo "sandport: Docker engine ready, base image $image"
