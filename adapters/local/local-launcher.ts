/**
 * The per-sandbox launcher, a POSIX sh script. One runs for each sandbox as a child of the
 * creating Node process. It starts bubblewrap (joined to the sandbox cgroups), the user-mode
 * network stack and the port bridges, and tears all of it down when its stdin closes: on
 * `terminate()`, and also when the creating process dies without warning (SIGKILL, crash),
 * because the kernel closes the pipe then. That is what guarantees that no process, cgroup or
 * directory of a sandbox outlives its creator. It is sh rather than Node because it starts in
 * about a millisecond, which create latency depends on.
 *
 * Positional arguments: the bwrap stage argv. Environment: see the `SBX_*` names below.
 * fd 0: lifeline; fd 3: status lines for the creator (`ready <pid>`, `failed <what>`, `exited <code>`, `cleaned`).
 */
export const launcherScript = String.raw`
set -u
exec 6<&0 </dev/null
helpers=""
bw=""
child=""
sweep() {
  for d in $SBX_CGROUP_DIRS; do
    for leaf in "$d"/*/ "$d"/; do
      [ -f "$leaf/cgroup.kill" ] && echo 1 > "$leaf/cgroup.kill" 2>/dev/null
      [ -f "$leaf/cgroup.procs" ] && while read -r p; do kill -KILL "$p" 2>/dev/null; done < "$leaf/cgroup.procs"
    done
  done
}
cleanup() {
  trap '' TERM INT HUP
  [ -n "$bw" ] && kill -KILL "$bw" 2>/dev/null
  # The sandbox's pid 1: killing it ends every process of its pid namespace.
  [ -n "$child" ] && kill -KILL "$child" 2>/dev/null
  for pid in $helpers; do kill -KILL "$pid" 2>/dev/null; done
  for f in $SBX_FREEZERS; do echo FROZEN > "$f" 2>/dev/null; done
  sweep
  for f in $SBX_FREEZERS; do echo THAWED > "$f" 2>/dev/null; done
  [ -n "$bw" ] && wait "$bw" 2>/dev/null
  for pid in $helpers; do wait "$pid" 2>/dev/null; done
  for d in $SBX_CGROUP_DIRS; do
    n=0
    while [ -d "$d" ] && [ $n -lt 500 ]; do
      for leaf in "$d"/*/; do [ -d "$leaf" ] && rmdir "$leaf" 2>/dev/null; done
      rmdir "$d" 2>/dev/null && break
      sweep
      n=$((n + 1)); sleep 0.01
    done
  done
  rm -rf "$SBX_DIR" 2>/dev/null || { chmod -R u+rwx "$SBX_DIR" 2>/dev/null; rm -rf "$SBX_DIR"; }
  echo "cleaned" >&3
  exit 0
}
trap cleanup TERM INT HUP
echo $$ > "$SBX_DIR/launcher.pid"
mkfifo "$SBX_DIR/info" "$SBX_DIR/started"
# fd 5 reaches the sandbox's init, which writes a line once bwrap has finished building the
# sandbox (bwrap reports the child pid on fd 4 before its mounts are in place).
sh -c 'for f in $SBX_CGROUPS; do echo $$ > "$f" || exit 97; done; exec "$@"' sbx-init "$@" 5>"$SBX_DIR/started" 4>"$SBX_DIR/info" </dev/null >/dev/null &
bw=$!
exec 7<"$SBX_DIR/started"
info=$(cat "$SBX_DIR/info")
child=$(printf '%s' "$info" | sed -n 's/.*"child-pid": *\([0-9]*\).*/\1/p')
if [ -z "$child" ]; then echo "failed sandbox" >&3; cleanup; fi
started=""
read -r started <&7 || true
exec 7<&-
if [ "$started" != started ]; then echo "failed sandbox" >&3; cleanup; fi
if [ -n "$SBX_SLIRP" ]; then
  mkfifo "$SBX_DIR/slirp-ready"
  userns=""
  [ "$SBX_SLIRP_USERNS" = 1 ] && userns="--userns-path=/proc/$child/ns/user"
  "$SBX_SLIRP" --configure --mtu=65520 --disable-host-loopback --ready-fd=5 $userns "$child" tap0 5>"$SBX_DIR/slirp-ready" </dev/null >/dev/null &
  helpers="$helpers $!"
  ready=$(cat "$SBX_DIR/slirp-ready")
  [ "$ready" = 1 ] || { echo "failed network" >&3; cleanup; }
fi
for port in $SBX_PORTS; do
  "$SBX_NSENTER" -t "$child" $SBX_BRIDGE_NAMESPACES -- $SBX_BRIDGE_USER "$SBX_SOCAT" "UNIX-LISTEN:$SBX_DIR/ports/$port.sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$port" </dev/null >/dev/null &
  helpers="$helpers $!"
done
for forward in $SBX_FORWARDS; do
  port=$(printf '%s' "$forward" | cut -d: -f1)
  path=$(printf '%s' "$forward" | cut -d: -f2-)
  "$SBX_NSENTER" -t "$child" $SBX_BRIDGE_NAMESPACES -- $SBX_BRIDGE_USER "$SBX_SOCAT" "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$path" </dev/null >/dev/null &
  helpers="$helpers $!"
done
for forward in $SBX_FORWARDS; do
  hex=$(printf '%04X' "$(printf '%s' "$forward" | cut -d: -f1)")
  n=0; while ! grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" "/proc/$child/net/tcp" && [ $n -lt 1000 ]; do n=$((n + 1)); sleep 0.002; done
done
for port in $SBX_PORTS; do
  n=0; while [ ! -S "$SBX_DIR/ports/$port.sock" ] && [ $n -lt 1000 ]; do n=$((n + 1)); sleep 0.002; done
  [ -S "$SBX_DIR/ports/$port.sock" ] || { echo "failed port $port" >&3; cleanup; }
done
echo "ready $child" >&3
( cat <&6 >/dev/null; kill -TERM $$ ) &
helpers="$helpers $!"
wait "$bw"
echo "exited $?" >&3
cleanup
`;
