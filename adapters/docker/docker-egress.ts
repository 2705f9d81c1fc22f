/**
 * Network allowlists on Docker. The container has no network at all (NetworkMode none, as with
 * `network: 'block'`); its one way out is 127.0.0.1:3128 inside it, forwarded to a unix socket in
 * a host directory where the sandbox's egress proxy (the kit's, in this process) listens and
 * applies the allowlist. A program that ignores the proxy variables reaches nothing.
 *
 * The forwarder is, in order of preference:
 * 1. the host's socat run in the container's network namespace (`nsenter -n`), when the engine
 *    runs on this host and this process is root: nothing of ours runs inside the container, and
 *    nothing inside can stop it. It runs under `setpriv --pdeathsig KILL`, so it dies with this
 *    process; the provider kills it with the sandbox;
 * 2. node or python3 inside the container (docker-forwards.ts), reaching the socket through a
 *    read-only bind mount of the host directory;
 * 3. neither: the create is refused.
 * Either forwarder failing leaves the sandbox without egress: it fails closed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { tmpdir } from 'node:os';
import type Docker from 'dockerode';
import {
  SandboxCapabilityUnsupportedError,
  SandboxProviderError,
  egressProxyPort,
  startEgressProxy,
  type EgressNetwork,
  type EgressProxy,
  type ParsedNetworkPolicy,
  type SandboxEmitter,
} from '../../src/kit/index.js';
import { runInContainer } from './docker-engine.js';
import { startContainerForwarder } from './docker-forwards.js';
import { egressContainerDirectory } from './docker-options.js';

/** An allowlist, as the proxy takes it. */
export type DockerAllowlist = Exclude<ParsedNetworkPolicy, 'allow' | 'block'>;

const socketName = 'proxy.sock';
const directoryPrefix = 'sandport-egress-';
/** Concurrent connections through the host forwarder (one socat process each). */
const hostForwarderMaxConnections = 256;
/** How long the host forwarder may take to listen. */
const forwarderStartMs = 10_000;

/**
 * A new per-sandbox host directory for the proxy's socket (no I/O): under the system's temporary
 * directory unless that path is too long for a unix socket or has characters socat's address
 * syntax reads specially. Named after this process, so a later create can remove the directories
 * of creators that died.
 */
export function egressHostDirectory(): string {
  const base = tmpdir();
  const usable = /^\/[A-Za-z0-9/._-]*$/.test(base) && base.length < 60;
  return join(usable ? base : '/tmp', `${directoryPrefix}${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Removes the socket directories that creators which died left behind (their proxy died with them). Never throws. */
export async function sweepEgressDirectories(): Promise<void> {
  const bases = [...new Set([tmpdir(), '/tmp'])];
  await Promise.all(
    bases.map(async (base) => {
      const entries = await readdir(base).catch(() => [] as string[]);
      await Promise.all(
        entries.map(async (entry) => {
          const pid = Number(/^sandport-egress-(\d+)-[0-9a-f]{12}$/.exec(entry)?.[1]);
          if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) return;
          await rm(join(base, entry), { recursive: true, force: true }).catch(() => undefined);
        }),
      );
    }),
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** Makes the host directory (owner only) before the container that mounts it is created. */
export async function makeEgressHostDirectory(directory: string): Promise<void> {
  await mkdir(directory, { mode: 0o700 }).catch((error: unknown) => {
    throw new SandboxProviderError({
      message: `Could not make the egress proxy's directory ${directory}: ${String(error)}`,
      provider: 'docker',
      cause: error,
    });
  });
}

/** A sandbox's egress: its proxy and the forwarder into its container. */
export interface DockerEgress {
  /** Which forwarder bridges the container's 127.0.0.1:3128 to the proxy. */
  readonly forwarder: 'host-socat' | 'container';
  /** Replaces the proxy's policy for connections opened from now on (`'block'` denies every new one). */
  setPolicy(policy: Exclude<ParsedNetworkPolicy, 'allow'>): void;
  /** Stops the forwarder and the proxy (closing what runs through them) and removes the host directory. Idempotent. */
  close(): Promise<void>;
}

export interface OpenDockerEgressOptions {
  container: Docker.Container;
  info: Docker.ContainerInspectInfo;
  sandboxId: string;
  policy: DockerAllowlist;
  /** Made by `makeEgressHostDirectory` and bind-mounted at {@link egressContainerDirectory}. */
  hostDirectory: string;
  events: SandboxEmitter;
  network: EgressNetwork | undefined;
  signal: AbortSignal | undefined;
}

/**
 * Starts the proxy on the host directory's socket, then the best forwarder there is (see the
 * file's comment). Throws `SandboxCapabilityUnsupportedError` (naming `network`) when no
 * forwarder can run; on any failure, what it started is stopped and the directory removed.
 */
export async function openDockerEgress(options: OpenDockerEgressOptions): Promise<DockerEgress> {
  const { container, info, sandboxId, policy, hostDirectory, signal } = options;
  const hostSocket = join(hostDirectory, socketName);
  let proxy: EgressProxy | undefined;
  let forwarder: HostForwarder | undefined;
  try {
    proxy = await startEgressProxy({
      provider: 'docker',
      sandboxId,
      policy,
      listen: { path: hostSocket },
      events: options.events,
      ...(options.network ? { network: options.network } : {}),
    });
    signal?.throwIfAborted();
    // A host forwarder that fails to start (a socat too old for its options, say) leaves the
    // one inside the container to try; its failure is the error when that one cannot run either.
    let hostFailure: unknown;
    forwarder = await startHostForwarder(container, info.State.Pid, hostSocket, signal).catch((error: unknown) => {
      if (signal?.aborted) throw signal.reason;
      hostFailure = error;
      return undefined;
    });
    if (!forwarder && !(await startContainerForwarder(container, egressProxyPort, `${egressContainerDirectory}/${socketName}`, signal))) {
      if (hostFailure) throw hostFailure;
      throw new SandboxCapabilityUnsupportedError({
        message:
          `network: an allowlist on Docker needs a forwarder from the container's 127.0.0.1:${egressProxyPort} to its egress proxy: ` +
          'run this process as root with nsenter, setpriv and socat on the host (and the engine on this host), or use an image that has node or python3',
        capability: policy.allowDomains.length > 0 ? 'network.allowDomains' : 'network.allowCidrs',
        provider: 'docker',
      });
    }
  } catch (error) {
    await closeAll(forwarder, proxy, hostDirectory);
    throw error;
  }
  const opened = proxy;
  const bridge = forwarder;
  let closing: Promise<void> | undefined;
  return {
    forwarder: bridge ? 'host-socat' : 'container',
    setPolicy: (next) => opened.setPolicy(next),
    close: () => (closing ??= closeAll(bridge, opened, hostDirectory)),
  };
}

async function closeAll(forwarder: HostForwarder | undefined, proxy: EgressProxy | undefined, directory: string): Promise<void> {
  // The forwarder first: nothing new reaches the proxy while it closes.
  await forwarder?.stop();
  await proxy?.close().catch(() => undefined);
  await rm(directory, { recursive: true, force: true }).catch(() => undefined);
}

interface HostForwarder {
  /** Kills socat and every connection it forked. Idempotent. */
  stop(): Promise<void>;
}

/** The host tools the nsenter forwarder needs, or undefined when one is missing. */
async function hostTools(): Promise<{ setpriv: string; nsenter: string; socat: string } | undefined> {
  const find = async (name: string) => {
    for (const directory of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
      if (!directory) continue;
      const candidate = join(directory, name);
      if (
        await access(candidate, constants.X_OK).then(
          () => true,
          () => false,
        )
      )
        return candidate;
    }
    return undefined;
  };
  const [setpriv, nsenter, socat] = await Promise.all([find('setpriv'), find('nsenter'), find('socat')]);
  return setpriv && nsenter && socat ? { setpriv, nsenter, socat } : undefined;
}

/**
 * The container's network namespace as the engine's pid for it shows it here, when this process
 * may enter it: root, and that pid's namespace is the one the container itself reports (not
 * another process's, as when the engine runs in another pid namespace than ours).
 */
async function enterableNamespace(container: Docker.Container, pid: number, signal: AbortSignal | undefined): Promise<string | undefined> {
  if (process.getuid?.() !== 0 || !Number.isInteger(pid) || pid <= 0) return undefined;
  const seenHere = await readlink(`/proc/${pid}/ns/net`).catch(() => undefined);
  if (!seenHere) return undefined;
  const inside = await runInContainer(container, ['readlink', '/proc/self/ns/net'], { signal }).catch(() => {
    if (signal?.aborted) throw signal.reason;
    return undefined;
  });
  return inside?.exitCode === 0 && inside.stdout.trim() === seenHere ? seenHere : undefined;
}

/**
 * Runs `socat` in the container's network namespace, listening on its 127.0.0.1:3128 and
 * connecting each connection to `hostSocket`; resolves once it listens there. Resolves undefined
 * when this host cannot (not root, tools missing, the container's processes not visible here).
 */
async function startHostForwarder(
  container: Docker.Container,
  pid: number,
  hostSocket: string,
  signal: AbortSignal | undefined,
): Promise<HostForwarder | undefined> {
  const tools = await hostTools();
  if (!tools) return undefined;
  const namespace = await enterableNamespace(container, pid, signal);
  if (!namespace) return undefined;
  signal?.throwIfAborted();
  // Its own process group (detached), so one kill reaches the connections it forked; the parent
  // death signal kills it if this process dies without stopping it.
  const child = spawn(
    tools.setpriv,
    [
      '--pdeathsig',
      'KILL',
      '--',
      tools.nsenter,
      `--net=/proc/${pid}/ns/net`,
      '--',
      tools.socat,
      // 128 KiB per read: socat's default of 8 KiB costs downloads through the proxy throughput.
      '-b',
      '131072',
      // Bounded: each connection is a host process, outside the container's pids limit; the
      // ones past the bound wait in the listen backlog. No Nagle delay on the relay's client side.
      `TCP-LISTEN:${egressProxyPort},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=128,max-children=${hostForwarderMaxConnections}`,
      `UNIX-CONNECT:${hostSocket}`,
    ],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const forwarder = superviseHostForwarder(child);
  try {
    await waitForListener(child, forwarder, namespace, signal);
  } catch (error) {
    await forwarder.stop();
    throw error;
  }
  return forwarder;
}

function superviseHostForwarder(child: ChildProcess): HostForwarder & { exited: boolean; stderr: () => string } {
  let stderr = '';
  let exited = false;
  // Read to the end so socat never blocks on a full pipe; the first few KiB explain a failure.
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    get exited() {
      return exited;
    },
    stderr: () => stderr.trim(),
    stop: () =>
      (stopping ??= (async () => {
        if (!exited && child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        await exit;
        // socat exits before the connections it forked have died of the same signal: wait for
        // them too, so that a terminated sandbox leaves no forwarder process behind.
        if (child.pid !== undefined) await groupEnded(child.pid);
      })()),
  };
}

/** How long `stop` waits for the killed connections' processes to die (they need no more than a moment). */
const groupEndMs = 5_000;

/** Waits until no live process (zombies aside: nothing may reap them here) is in process group `pgid`. */
async function groupEnded(pgid: number): Promise<void> {
  const deadline = Date.now() + groupEndMs;
  while (Date.now() < deadline && (await liveGroupMembers(pgid)) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function liveGroupMembers(pgid: number): Promise<number> {
  let live = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Fields after the command name, which is in parentheses and may hold spaces: state, ppid, pgrp.
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === pgid && state !== 'Z' && state !== 'X') live++;
  }
  return live;
}

/** Waits until the forwarder is socat inside `namespace` and listens there. */
async function waitForListener(
  child: ChildProcess,
  forwarder: { exited: boolean; stderr: () => string },
  namespace: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const port = egressProxyPort.toString(16).toUpperCase().padStart(4, '0');
  const listening = new RegExp(`^\\s*\\d+: 0100007F:${port} 00000000:0000 0A `, 'm');
  const deadline = Date.now() + forwarderStartMs;
  for (;;) {
    signal?.throwIfAborted();
    if (forwarder.exited) {
      throw new SandboxProviderError({
        message: `The egress forwarder (socat in the container's network namespace) exited before listening: ${forwarder.stderr() || 'no output'}`,
        provider: 'docker',
      });
    }
    // Until nsenter has entered the namespace, the child's view is this host's network: only
    // once it is the container's does its table say anything about the container.
    const seen = await readlink(`/proc/${child.pid}/ns/net`).catch(() => undefined);
    if (seen === namespace && listening.test(await readFile(`/proc/${child.pid}/net/tcp`, 'utf8').catch(() => ''))) return;
    if (Date.now() > deadline) {
      throw new SandboxProviderError({
        message: `The egress forwarder did not listen within ${forwarderStartMs} ms`,
        provider: 'docker',
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
