import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { SandboxProviderError } from '../../src/kit/index.js';
import type { SandboxCgroups } from './local-cgroups.js';
import type { LocalSystem } from './local-system.js';

/**
 * The per-sandbox launcher, a POSIX sh script. One runs for each sandbox as a child of the
 * creating Node process. It starts bubblewrap (joined to the sandbox cgroups), the user-mode
 * network stack and the port bridges (tunnels, host forwards), and tears all of it down when its stdin closes: on
 * `terminate()`, and also when the creating process dies without warning (SIGKILL, crash),
 * because the kernel closes the pipe then. When the launcher dies too (creator and launchers
 * SIGKILLed as one process group), bwrap and the helpers die with it (parent-death signal), and
 * a reaper in its own session removes the directories and cgroups left behind; the next create
 * (or `cleanup()`) sweeps whatever even that missed. It is sh rather than Node because it starts in
 * about a millisecond, which create latency depends on.
 *
 * Positional arguments: the bwrap stage argv. Environment: see the `SBX_*` names below.
 * fd 0: lifeline; fd 3: status lines for the creator (`ready <pid>`, `failed <what>`, `exited <code>`, `cleaned`).
 */
/**
 * See the launcher's reaper. Environment: `SBX_DIR`, `SBX_CGROUP_DIRS`, `SBX_FREEZERS` (a paused
 * sandbox is thawed after the kill: a frozen task of a v1 freezer does not die of SIGKILL until
 * then, and nothing else would ever thaw it once its launcher is gone).
 */
const reaperScript = `
cat >/dev/null
[ -d "$SBX_DIR" ] || exit 0
n=0
while [ $n -lt 600 ]; do
  left=""
  for d in $SBX_CGROUP_DIRS; do
    for leaf in "$d"/*/ "$d"/; do
      [ -f "$leaf/cgroup.procs" ] && while read -r p; do kill -KILL "$p" 2>/dev/null; done < "$leaf/cgroup.procs"
      [ -d "$leaf" ] && rmdir "$leaf" 2>/dev/null
    done
    [ -d "$d" ] && left=1
  done
  for f in $SBX_FREEZERS; do echo THAWED > "$f" 2>/dev/null; done
  [ -z "$left" ] && break
  n=$((n + 1)); sleep 0.05
done
rm -rf "$SBX_DIR" 2>/dev/null || { chmod -R u+rwx "$SBX_DIR" 2>/dev/null; rm -rf "$SBX_DIR"; }
`;

const launcherScript = String.raw`
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
  # Processes leave their cgroups a moment after SIGKILL; an exec may still be joining one.
  # Whatever is left after this loop, the creator removes (it waits for this script to exit).
  for d in $SBX_CGROUP_DIRS; do
    n=0
    while [ -d "$d" ] && [ $n -lt 1000 ]; do
      for leaf in "$d"/*/; do [ -d "$leaf" ] && rmdir "$leaf" 2>/dev/null; done
      rmdir "$d" 2>/dev/null && break
      for f in $SBX_FREEZERS; do echo FROZEN > "$f" 2>/dev/null; done
      sweep
      for f in $SBX_FREEZERS; do echo THAWED > "$f" 2>/dev/null; done
      n=$((n + 1)); sleep 0.01
    done
  done
  rm -rf "$SBX_DIR" 2>/dev/null || { chmod -R u+rwx "$SBX_DIR" 2>/dev/null; rm -rf "$SBX_DIR"; }
  echo "cleaned" >&3
  exit 0
}
trap cleanup TERM INT HUP
echo $$ > "$SBX_DIR/launcher.pid"
# The reaper, in a session of its own so that a process-group kill of the creator spares it. It
# reads a FIFO that this launcher and everything it starts hold open; at EOF (all of them gone)
# it removes what a launcher killed before its cleanup left: cgroup directories, the state dir.
mkfifo "$SBX_DIR/reaper"
setsid /bin/sh -c "$SBX_REAPER" sandport-reaper <"$SBX_DIR/reaper" >/dev/null 2>&1 &
exec 8>"$SBX_DIR/reaper"
mkfifo "$SBX_DIR/info" "$SBX_DIR/started"
# fd 5 reaches the sandbox's init, which writes a line once bwrap has finished building the
# sandbox (bwrap reports the child pid on fd 4 before its mounts are in place).
sh -c 'for f in $SBX_CGROUPS; do echo $$ > "$f" || exit 97; done; exec "$@"' sbx-init "$@" 5>"$SBX_DIR/started" 4>"$SBX_DIR/info" 8>&- </dev/null >/dev/null &
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
  "$SBX_SETPRIV" --pdeathsig KILL -- "$SBX_SLIRP" --configure --mtu=65520 --disable-host-loopback --ready-fd=5 $userns "$child" tap0 5>"$SBX_DIR/slirp-ready" </dev/null >/dev/null &
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
  # 128 KiB per read (socat's default of 8 KiB costs the egress proxy's downloads a tenth of
  # their throughput), and no Nagle delay on the sandbox's side of a relay.
  "$SBX_NSENTER" -t "$child" $SBX_BRIDGE_NAMESPACES -- $SBX_BRIDGE_USER "$SBX_SOCAT" -b 131072 "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr,nodelay" "UNIX-CONNECT:$path" </dev/null >/dev/null &
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

/** What one launcher runs. */
export interface LauncherSpec {
  /** The bwrap stage argv (`bwrapStage`). */
  stage: readonly string[];
  /** The sandbox's state directory; the launcher removes it on the way out. */
  dir: string;
  cgroups: SandboxCgroups | undefined;
  system: LocalSystem;
  sandboxUid: number;
  networked: boolean;
  ports: readonly number[];
  forwards: ReadonlyArray<{ port: number; socketPath: string }>;
  /** PATH for the launcher's own tools. */
  path: string;
}

/** A running launcher: the sandbox is ready. */
export interface Launcher {
  /** Host pid of the sandbox's pid 1 (the namespaces every exec enters). */
  readonly childPid: number;
  /** Settles when the launcher has exited, whatever made it: the sandbox is gone then. */
  readonly exited: Promise<void>;
  /** Closes the lifeline and waits for the launcher's cleanup (SIGKILL after `graceMs`). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a launcher and waits for its `ready` line. An abort of `signal`, a setup failure or an
 * early exit stops it and waits for its cleanup before rejecting (with `signal.reason`, or a
 * `SandboxProviderError` carrying the launcher's diagnostics).
 */
export function startLauncher(spec: LauncherSpec, signal: AbortSignal | undefined): Promise<Launcher> {
  const { system, cgroups } = spec;
  const bridgeUser = system.isRoot ? [`--reuid=${spec.sandboxUid}`, `--regid=${spec.sandboxUid}`, '--clear-groups'] : [];
  const { forwards } = spec;
  const child = spawn('/bin/sh', ['-c', launcherScript, 'sandport-launcher', ...spec.stage], {
    env: {
      PATH: spec.path,
      SBX_DIR: spec.dir,
      SBX_REAPER: reaperScript,
      SBX_CGROUPS: cgroups?.procsFiles('init').join(' ') ?? '',
      SBX_CGROUP_DIRS: cgroups?.cleanupDirs().join(' ') ?? '',
      SBX_FREEZERS: cgroups?.freezerStateFiles().join(' ') ?? '',
      SBX_SETPRIV: system.binaries.setpriv,
      SBX_SLIRP: spec.networked ? system.binaries.slirp4netns! : '',
      SBX_SLIRP_USERNS: system.isRoot ? '0' : '1',
      SBX_PORTS: spec.ports.join(' '),
      SBX_FORWARDS: forwards.map(({ port, socketPath }) => `${port}:${socketPath}`).join(' '),
      SBX_NSENTER: system.binaries.nsenter,
      SBX_SOCAT: system.binaries.socat ?? 'socat',
      // Root may join the network namespace alone; anyone else enters its user namespace first.
      SBX_BRIDGE_NAMESPACES: system.isRoot ? '-n' : '-U --preserve-credentials -n',
      // The bridges die with the launcher too: the death signal is set after the uid change.
      SBX_BRIDGE_USER: [system.binaries.setpriv, ...bridgeUser, '--pdeathsig', 'KILL', '--'].join(' '),
    },
    stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin!.on('error', () => undefined);
  let diagnostics = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    diagnostics = (diagnostics + chunk).slice(-4000);
  });
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 30_000): Promise<void> => {
    stopping ??= (async () => {
      // Closing the lifeline makes the launcher kill everything and remove the sandbox's files.
      child.stdin!.end();
      const forced = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(forced);
    })();
    return stopping;
  };
  return new Promise<Launcher>((resolve, reject) => {
    const lines = createInterface({ input: child.stdio[3] as Readable });
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void stop().then(() => reject(error));
    };
    const onAbort = () => fail(signal!.reason);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const failure = (what: string) =>
      new SandboxProviderError({ message: `${what}: ${diagnostics.trim() || 'no diagnostics'}`, provider: 'local' });
    lines.on('line', (line) => {
      if (settled) return;
      const [word, value] = line.split(' ');
      if (word === 'ready') {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve({ childPid: Number(value), exited, stop });
      } else if (word === 'failed') {
        // The reason is on stderr, which may arrive a moment after the status line.
        setTimeout(() => fail(failure(`Sandbox ${line.slice(7)} setup failed`)), 20);
      }
    });
    void exited.then(() => fail(failure('The sandbox launcher exited during setup')));
  });
}
