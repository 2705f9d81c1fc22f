#!/usr/bin/env bash
# Stops the dockerd that scripts/setup-docker.sh started (and only that one), by its recorded pid.
set -uo pipefail
pidfile=/run/sandport-dockerd.pid
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# The pid may have been reused since (a reboot, a crashed engine): signal it only if it is dockerd.
if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
  rm -f "$pidfile"
  echo "sandport: the recorded dockerd ($pid) is not running; nothing to stop"
  exit 0
fi
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
fi
rm -f "$pidfile"
echo "sandport: stopped dockerd ($pid)"
