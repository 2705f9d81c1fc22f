/**
 * What the Docker adapter keeps on the engine and reads back: container labels, the state
 * directory inside each container, the tags file, small commands of our own, and the check that
 * a sandbox id can only ever name a container (never another URL).
 */
import { hostname } from 'node:os';
import type { Duplex, Readable } from 'node:stream';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import { SandboxNotFoundError, SandboxTimeoutError } from '../../src/kit/index.js';

/** Labels every sandport container carries; they make lookup and cleanup work across processes. */
export const labels = {
  managed: 'dev.sandport.managed',
  name: 'dev.sandport.name',
  tags: 'dev.sandport.tags',
  createdAt: 'dev.sandport.created-at',
  expiresAt: 'dev.sandport.expires-at',
  workdir: 'dev.sandport.workdir',
  env: 'dev.sandport.env',
  entrypoint: 'dev.sandport.entrypoint',
  /** `<hostname>:<pid>` of the creating process: a container it left in "created" can be swept. */
  creator: 'dev.sandport.creator',
  /** `allow`, `block` or `allowlist`: how the sandbox was created (an allowlist's proxy lives in its creator). */
  network: 'dev.sandport.network',
} as const;

/** This process, as the `creator` label names it. */
export const thisCreator = `${hostname()}:${process.pid}`;

/**
 * Inside the container: where the lifetime deadline, the mutable tags and the secrets live. It is
 * a tmpfs, so `commit` (snapshots) never captures them; the archive API does not see tmpfs
 * mounts, so everything here is read and written through exec.
 */
export const stateDirectory = '/.sandport';

/** Containers are named `sandport-<name>`, where `<name>` follows the create `name` schema. */
export const containerNamePrefix = 'sandport-';

/**
 * A sandbox id as the engine's URL may carry it: a full 64-hex container id or a prefix of one
 * (we hand out 12), or our container name. Nothing else reaches the engine: an id like `../x`
 * would otherwise change which endpoint (or which host) a request goes to.
 */
const containerRef = /^(?:[0-9a-f]{4,64}|sandport-[A-Za-z0-9][A-Za-z0-9._-]{0,62})$/;

/** Throws `SandboxNotFoundError` unless `id` can name a sandport container. No I/O. */
export function checkContainerRef(id: string): string {
  if (!containerRef.test(id)) {
    throw new SandboxNotFoundError({
      message: `No sandport sandbox has the id ${JSON.stringify(id.slice(0, 80))}`,
      sandboxId: id.slice(0, 80),
      provider: 'docker',
    });
  }
  return id;
}

/** Named after the container, so that a snapshot's copy of it does not speak for a new sandbox. */
export const tagsFile = (sandboxId: string) => `${stateDirectory}/tags-${sandboxId}.json`;

/** Whether the engine runs on this host (a local socket), so its containers' processes are ours to see. */
export function engineIsLocal(docker: Docker): boolean {
  const modem = docker.modem as { socketPath?: unknown; host?: unknown } | undefined;
  // docker-modem finds the default socket lazily: its socketPath is then a function.
  return (typeof modem?.socketPath === 'string' || typeof modem?.socketPath === 'function') && !modem.host;
}

/** Whether a container left by a creator that died before starting it is safe to remove. */
export function isStaleCreated(container: Pick<Docker.ContainerInfo, 'State' | 'Labels' | 'Created'>, now: number): boolean {
  if (container.State !== 'created') return false;
  // Its creator ran on this host and is gone: nobody will start it.
  const [host, pid] = (container.Labels[labels.creator] ?? '').split(':');
  if (host === hostname() && pid !== undefined && !processAlive(Number(pid))) return true;
  // Nothing of ours sits between createContainer and start for long: past two minutes it is
  // stale whoever made it (a creator elsewhere, or one whose pid was reused).
  const createdAt = Number(container.Labels[labels.createdAt] ?? container.Created * 1000);
  return now - createdAt > 120_000;
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * A small command of our own inside the container (state files, secrets, the tree killer): no
 * wrapper, no marker, output collected whole. For user commands, `exec` is the streaming path.
 */
export async function runInContainer(
  container: Docker.Container,
  argv: string[],
  options: { stdin?: Uint8Array; signal?: AbortSignal | undefined; timeoutMs?: number } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  options.signal?.throwIfAborted();
  if (options.timeoutMs !== undefined) {
    // A container whose engine is stuck on another exec never answers: give up, and close our side.
    const limit = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, limit]) : limit;
    return runInContainer(container, argv, { ...options, signal, timeoutMs: undefined }).catch((error: unknown) => {
      if (limit.aborted && !options.signal?.aborted) {
        throw new SandboxTimeoutError({
          message: `${argv[0]} in the container did not finish within ${options.timeoutMs} ms`,
          timeoutMs: options.timeoutMs!,
          operation: 'exec',
          provider: 'docker',
        });
      }
      throw error;
    });
  }
  const exec = await container.exec({
    Cmd: argv,
    AttachStdin: options.stdin !== undefined,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const stream = (await exec.start({ hijack: true, stdin: options.stdin !== undefined })) as unknown as Duplex;
  const chunks: Buffer[] = [];
  const errors: Buffer[] = [];
  let pending: Buffer = Buffer.alloc(0);
  // Our own commands print little: the frames are collected whole.
  stream.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8 && pending.length >= 8 + pending.readUInt32BE(4)) {
      const size = pending.readUInt32BE(4);
      (pending[0] === 2 ? errors : chunks).push(pending.subarray(8, 8 + size));
      pending = pending.subarray(8 + size);
    }
  });
  const onAbort = () => stream.destroy();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', reject);
      if (options.stdin !== undefined) stream.end(options.stdin);
    });
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  options.signal?.throwIfAborted();
  let info = await exec.inspect();
  // The engine may answer Running false with no ExitCode yet, just after the stream ended (seen
  // on the first exec after an unpause): that is not an exit, so wait for the code too.
  const settled = () => !info.Running && info.ExitCode !== null && info.ExitCode !== undefined;
  for (let attempt = 0; !settled() && attempt < 200; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(5 * (attempt + 1), 50)));
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(chunks).toString('utf8'), stderr: Buffer.concat(errors).toString('utf8') };
}

/** Reads the current tags from inside a container (falls back to the create-time label). */
export async function readTags(
  container: Docker.Container,
  sandboxId: string,
  signal?: AbortSignal,
  timeoutMs?: number,
): Promise<Record<string, string>> {
  const result = await runInContainer(container, ['cat', tagsFile(sandboxId)], {
    signal,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  if (result.exitCode === 0) return JSON.parse(result.stdout) as Record<string, string>;
  const info = await container.inspect();
  return JSON.parse(info.Config.Labels?.[labels.tags] ?? '{}') as Record<string, string>;
}

/** Where a paused container's tags wait (see `holdLifetimeArgv`): its root filesystem, reached by the archive API. */
export const pausedTagsDirectory = '/.sandport-paused';
const pausedTagsName = (sandboxId: string) => `tags-${sandboxId}.json`;

/**
 * Reads the tags of a paused container (no exec runs in a paused container): the copy the pause
 * left in its root filesystem, or the create-time label when there is none (tags never set, or
 * a container paused by something else than sandport).
 */
export async function readPausedTags(container: Docker.Container, sandboxId: string): Promise<Record<string, string>> {
  const archive = (await container.getArchive({ path: `${pausedTagsDirectory}/${pausedTagsName(sandboxId)}` }).catch((error: unknown) => {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  })) as unknown as Readable | undefined;
  const text = archive ? await firstFileOf(archive) : undefined;
  if (text !== undefined) return JSON.parse(text) as Record<string, string>;
  const info = await container.inspect();
  return JSON.parse(info.Config.Labels?.[labels.tags] ?? '{}') as Record<string, string>;
}

/** Writes the tags of a paused container where `readPausedTags` reads them and the resume picks them up. */
export async function writePausedTags(container: Docker.Container, sandboxId: string, tags: Record<string, string>): Promise<void> {
  const pack = tar.pack();
  const bytes = Buffer.from(JSON.stringify(tags));
  pack.entry({ name: pausedTagsName(sandboxId), size: bytes.byteLength, mode: 0o644, uid: 0, gid: 0, mtime: new Date() }, bytes);
  pack.finalize();
  await container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: pausedTagsDirectory });
}

/** The text of the first regular file in a (small) tar stream. */
function firstFileOf(archive: Readable): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let found: string | undefined;
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on('end', () => {
        if (found === undefined && header.type === 'file') found = Buffer.concat(chunks).toString('utf8');
        next();
      });
      stream.resume();
    });
    extract.on('finish', () => resolve(found));
    extract.on('error', reject);
    archive.on('error', reject);
    archive.pipe(extract);
  });
}

/** The deadline the keeper obeys, in epoch milliseconds (0 when unreadable). */
export async function readDeadline(container: Docker.Container): Promise<number> {
  const { exitCode, stdout } = await runInContainer(container, ['cat', `${stateDirectory}/deadline`]);
  if (exitCode !== 0 || !/^\d+$/.test(stdout.trim())) return 0;
  return Number(stdout.trim()) * 1000;
}
