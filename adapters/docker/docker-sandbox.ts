import { randomBytes } from 'node:crypto';
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import {
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  commandSchema,
  execOptionsSchema,
  parseOptions,
  retryIdempotent,
  runOptionsSchema,
  runViaExec,
  type Command,
  type ExecOptions,
  type ExecResult,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxSnapshotRef,
  type SandboxStatus,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { mapDockerError } from './docker-errors.js';
import { DockerSandboxProcess, execWrapper, wrapperChecks } from './docker-exec.js';
import { DockerFiles } from './docker-files.js';

type Ended = Extract<SandboxStatus, { state: 'terminated' }>;

/** Labels every sandport container carries; they make lookup and cleanup work across processes. */
export const labels = {
  managed: 'dev.sandport.managed',
  id: 'dev.sandport.id',
  name: 'dev.sandport.name',
  tags: 'dev.sandport.tags',
  createdAt: 'dev.sandport.created-at',
  expiresAt: 'dev.sandport.expires-at',
  workdir: 'dev.sandport.workdir',
  env: 'dev.sandport.env',
  entrypoint: 'dev.sandport.entrypoint',
} as const;

/**
 * Inside the container: where the lifetime deadline, the mutable tags and the secrets live. It is
 * a tmpfs, so `commit` (snapshots) never captures them; the archive API does not see tmpfs
 * mounts, so everything here is read and written through exec.
 */
export const stateDirectory = '/.sandport';
const secretsFile = `${stateDirectory}/secrets.sh`;

/**
 * Runs before every command: loads the sandbox's secrets (kept out of the container's Env, which
 * `docker inspect` and `commit` expose), while the exec's own env, named in SANDPORT_EXEC_ENV,
 * keeps precedence. Names are validated by the env schema, so `eval` only sees identifiers.
 */
const secretsPrelude = [
  `if [ -r ${secretsFile} ]; then`,
  '  for sp_name in $SANDPORT_EXEC_ENV; do eval "sp_keep_$sp_name=\\$$sp_name"; done',
  `  . ${secretsFile}`,
  '  for sp_name in $SANDPORT_EXEC_ENV; do eval "export $sp_name=\\"\\$sp_keep_$sp_name\\""; unset "sp_keep_$sp_name"; done',
  '  unset sp_name',
  'fi',
  'unset SANDPORT_EXEC_ENV',
].join('\n');

/**
 * Runs the create-time `command`: like any exec, but when it exits it hands its status to the
 * container's main process, which exits with it. The container (and `wait()` of any process)
 * then ends with the entrypoint, whether or not the creating process is still alive.
 */
const entrypointWrapper = [
  ...wrapperChecks,
  '"$@"',
  'rc=$?',
  `echo "$rc" > ${stateDirectory}/entrypoint-exit`,
  `kill -USR1 "$(cat ${stateDirectory}/keeper.pid)" 2>/dev/null`,
  'exit "$rc"',
].join('\n');

/** The secrets file: one `export NAME='value'` line per secret, single-quoted for sh. */
export function secretsScript(secrets: Record<string, string>): string {
  return Object.entries(secrets)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`)
    .join('');
}

export interface DockerSandboxInit {
  id: string;
  name: string | undefined;
  container: Docker.Container;
  docker: Docker;
  env: Record<string, string>;
  workdir: string;
  tunnels: Record<number, Tunnel>;
  expiresAt: number;
  idleTimeoutMs: number | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** True when this process created the container (it then owns idle tracking). */
  owned: boolean;
  /** The container was created with an entrypoint `command`. */
  hasEntrypoint: boolean;
  onEnd: (sandbox: DockerSandbox) => void;
}

/** A running Docker container used as a sandbox. */
export class DockerSandbox implements Sandbox {
  readonly provider = 'docker';
  readonly id: string;
  readonly name: string | undefined;
  readonly files: DockerFiles;
  readonly warnings: readonly SandboxWarning[];
  private ended: Ended | undefined;
  private terminating: Promise<void> | undefined;
  private terminatedByUs = false;
  private readonly running = new Set<DockerSandboxProcess>();
  private idleTimer: NodeJS.Timeout | undefined;
  private lifetimeTimer: NodeJS.Timeout | undefined;
  private expiresAt!: number;
  private exitWatch: Promise<Ended> | undefined;
  private knownOomKills = 0;

  /** @internal */
  constructor(private readonly init: DockerSandboxInit) {
    this.id = init.id;
    this.name = init.name;
    this.warnings = init.warnings;
    this.expiresAt = init.expiresAt;
    this.files = new DockerFiles(this, init.container, init.workdir);
    this.armLifetime();
    this.touch();
    // A sandbox this process created is watched from the start, like a child process. One found
    // with fromId is watched only once asked (wait, poll, terminate): the engine's wait call is an
    // open request that would keep an attaching script alive until the container ends.
    if (init.owned) void this.waitForExit;
  }

  private get waitForExit(): Promise<Ended> {
    this.exitWatch ??= (async () => {
      const result = (await this.init.container.wait().catch(() => undefined)) as { StatusCode?: number } | undefined;
      if (this.terminatedByUs) return this.settle({ state: 'terminated', reason: 'terminated' });
      if (Date.now() >= this.expiresAt - 1_000) return this.settle({ state: 'terminated', reason: 'lifetime-timeout' });
      // Before the deadline, a container with an entrypoint ends with the entrypoint's status.
      if (this.init.hasEntrypoint && result?.StatusCode !== undefined) {
        return this.settle({ state: 'terminated', reason: 'entrypoint-exited', exitCode: result.StatusCode });
      }
      return this.settle({ state: 'terminated', reason: 'crashed' });
    })();
    return this.exitWatch;
  }

  /** The dockerode container, for what the contract does not cover. */
  get native(): Docker.Container {
    return this.init.container;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<DockerSandboxProcess> {
    return this.start(command, options, execWrapper);
  }

  /** @internal Starts the create-time `command`. */
  execEntrypoint(command: Command): Promise<DockerSandboxProcess> {
    return this.start(command, {}, entrypointWrapper);
  }

  private async start(command: Command, options: ExecOptions, wrapper: string): Promise<DockerSandboxProcess> {
    const parsed = parseOptions(execOptionsSchema, options, { provider: 'docker', what: 'exec options' });
    const argv = parseOptions(commandSchema, command, { provider: 'docker', what: 'command' });
    const args = typeof argv === 'string' ? ['/bin/sh', '-c', argv] : [...argv];
    parsed.signal?.throwIfAborted();
    this.assertRunning();
    this.touch();
    const execId = `e${randomBytes(6).toString('hex')}`;
    const env = { ...this.init.env, ...parsed.env, SANDPORT_EXEC_ID: execId, SANDPORT_EXEC_ENV: Object.keys(parsed.env ?? {}).join(' ') };
    const startedAt = performance.now();
    let exec: Docker.Exec;
    let socket: import('node:stream').Duplex;
    try {
      exec = await this.init.container.exec({
        Cmd: ['/bin/sh', '-c', `${secretsPrelude}\n${wrapper}`, 'sandport', parsed.cwd ?? this.init.workdir, ...args],
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      socket = (await exec.start({ hijack: true, stdin: true })) as unknown as import('node:stream').Duplex;
    } catch (error) {
      throw this.isRunning() ? mapDockerError(error, { operation: 'exec', sandboxId: this.id }) : this.gone();
    }
    const process = new DockerSandboxProcess(
      {
        sandboxId: this.id,
        container: this.init.container,
        isRunning: () => this.isRunning(),
        ended: (finished) => {
          this.running.delete(finished);
          this.touch();
        },
        oomKilled: () => this.oomKillsIncreased(),
      },
      exec,
      socket,
      execId,
      args,
      parsed.timeoutMs,
      parsed.signal,
    );
    this.running.add(process);
    try {
      await process.started;
    } catch (error) {
      this.running.delete(process);
      throw error;
    }
    this.init.events.emit('exec-start', { provider: 'docker', sandboxId: this.id, execId, command });
    const ended = (exitCode: number | undefined, signal: string | undefined) =>
      this.init.events.emit('exec-end', { provider: 'docker', sandboxId: this.id, execId, exitCode, signal, durationMs: performance.now() - startedAt });
    process.wait().then(
      (status) => ended(status.exitCode, status.signal),
      () => ended(undefined, undefined),
    );
    return process;
  }

  run(command: Command, options: RunOptions = {}): Promise<ExecResult> {
    const parsed = parseOptions(runOptionsSchema, options, { provider: 'docker', what: 'run options' });
    return runViaExec((c, o) => this.exec(c, o), command, parsed, 'docker');
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    return { ...this.init.tunnels };
  }

  get snapshot(): (options?: SignalOptions) => Promise<SandboxSnapshotRef> {
    return async (options: SignalOptions = {}) => {
      options.signal?.throwIfAborted();
      this.assertRunning();
      const tag = `snap-${randomBytes(8).toString('hex')}`;
      try {
        await this.init.container.commit({ repo: 'sandport/snapshot', tag, pause: true, changes: [`LABEL ${labels.managed}=snapshot`] } as never);
      } catch (error) {
        throw mapDockerError(error, { operation: 'snapshot', sandboxId: this.id });
      }
      return { type: 'snapshot', provider: 'docker', id: `sandport/snapshot:${tag}` };
    };
  }

  async setTags(tags: Record<string, string>, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    for (const [key, value] of Object.entries(tags)) {
      if (typeof key !== 'string' || typeof value !== 'string') {
        throw new SandboxInvalidArgumentError({ message: 'tags are string keys and values', argument: 'tags', provider: 'docker' });
      }
    }
    this.assertRunning();
    this.touch();
    // Labels are fixed at create, so the current tags live in a file inside the container.
    const written = await runInContainer(this.init.container, ['/bin/sh', '-c', 'cat > "$1"', 'set-tags', tagsFile(this.id)], {
      stdin: new TextEncoder().encode(JSON.stringify(tags)),
      signal: options.signal,
    }).catch((error: unknown) => {
      throw this.isRunning() ? mapDockerError(error, { operation: 'setTags', sandboxId: this.id }) : this.gone();
    });
    if (written.exitCode !== 0) throw mapDockerError(new Error(`writing the tags failed: ${written.stderr}`), { operation: 'setTags', sandboxId: this.id });
  }

  async getTags(options: SignalOptions = {}): Promise<Record<string, string>> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    return readTags(this.init.container, this.id, options.signal);
  }

  get extendTimeout(): (timeoutMs: number, options?: SignalOptions) => Promise<void> {
    return async (timeoutMs: number, options: SignalOptions = {}) => {
      options.signal?.throwIfAborted();
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
        throw new SandboxInvalidArgumentError({ message: 'timeoutMs must be a positive integer', argument: 'timeoutMs', provider: 'docker' });
      }
      this.assertRunning();
      const expiresAt = Date.now() + timeoutMs;
      // The container's main process polls this deadline, so the new lifetime holds even after we exit.
      const written = await runInContainer(this.init.container, ['/bin/sh', '-c', 'echo "$1" > "$2"', 'extend', String(Math.ceil(expiresAt / 1000)), `${stateDirectory}/deadline`], {
        signal: options.signal,
      }).catch((error: unknown) => {
        throw this.isRunning() ? mapDockerError(error, { operation: 'extendTimeout', sandboxId: this.id }) : this.gone();
      });
      if (written.exitCode !== 0) throw mapDockerError(new Error(`writing the deadline failed: ${written.stderr}`), { operation: 'extendTimeout', sandboxId: this.id });
      this.expiresAt = expiresAt;
      this.armLifetime();
    };
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (this.ended) return this.ended;
    const info = await retryIdempotent('poll', () => this.init.container.inspect().catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'poll', sandboxId: this.id });
    }), { provider: 'docker', events: this.init.events, signal: options.signal }).catch(() => undefined);
    if (info?.State.Running) return { state: 'running' };
    return this.waitForExit;
  }

  wait(options: SignalOptions = {}): Promise<Ended> {
    options.signal?.throwIfAborted();
    if (this.ended) return Promise.resolve(this.ended);
    if (!options.signal) return this.waitForExit;
    return new Promise<Ended>((resolve, reject) => {
      const onAbort = () => reject(options.signal!.reason);
      options.signal!.addEventListener('abort', onAbort, { once: true });
      void this.waitForExit.then((status) => {
        options.signal!.removeEventListener('abort', onAbort);
        resolve(status);
      });
    });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    this.terminating ??= (async () => {
      this.terminatedByUs = true;
      for (const process of this.running) process.sandboxEnded();
      await this.init.container.remove({ force: true }).catch((error: unknown) => {
        const mapped = mapDockerError(error, { operation: 'terminate', sandboxId: this.id });
        // Already gone (AutoRemove after the lifetime ran out, or removed elsewhere) is fine.
        if (mapped.code !== 'sandbox_not_found') throw mapped;
      });
      await this.waitForExit;
    })();
    await this.terminating;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** @internal */
  assertRunning(): void {
    if (!this.isRunning()) throw this.gone();
  }

  /** @internal */
  isRunning(): boolean {
    return !this.ended && !this.terminating;
  }

  /** @internal */
  touch(): void {
    if (this.init.idleTimeoutMs === undefined || !this.init.owned || this.ended) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.running.size > 0) return this.touch();
      void this.endBecause('idle-timeout');
    }, this.init.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** @internal The entrypoint exited. */
  entrypointExited(exitCode: number): void {
    void this.endBecause('entrypoint-exited', exitCode);
  }

  private async endBecause(reason: Ended['reason'], exitCode?: number): Promise<void> {
    this.pendingReason = { state: 'terminated', reason, ...(exitCode === undefined ? {} : { exitCode }) };
    await this.terminate().catch(() => undefined);
  }

  private pendingReason: Ended | undefined;

  private armLifetime(): void {
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    // The container ends itself at the deadline; this timer only makes the end prompt and named.
    this.lifetimeTimer = setTimeout(() => void this.endBecause('lifetime-timeout'), Math.max(0, this.expiresAt - Date.now()));
    this.lifetimeTimer.unref();
  }

  private settle(status: Ended): Ended {
    if (this.ended) return this.ended;
    const final = this.pendingReason ?? status;
    this.ended = final;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    for (const process of this.running) process.sandboxEnded();
    this.init.onEnd(this);
    this.init.events.emit('sandbox-terminated', { provider: 'docker', sandboxId: this.id, reason: final.reason });
    return final;
  }

  /**
   * The engine flags OOM only for the container's main process; a killed exec is a bare 137. The
   * memory cgroup's oom_kill counter (v2 memory.events, v1 memory.oom_control) tells them apart.
   */
  private async oomKillsIncreased(): Promise<boolean> {
    if (!this.isRunning()) return false;
    const { stdout } = await runInContainer(this.init.container, [
      '/bin/sh',
      '-c',
      'cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control',
    ]);
    const kills = Number(/^oom_kill (\d+)$/m.exec(stdout)?.[1] ?? 0);
    const increased = kills > this.knownOomKills;
    this.knownOomKills = kills;
    return increased;
  }

  private gone(): SandboxNotFoundError {
    return new SandboxNotFoundError({ message: `Sandbox ${this.id} is no longer running`, sandboxId: this.id, provider: 'docker' });
  }
}

/** Named after the container, so that a snapshot's copy of it does not speak for a new sandbox. */
const tagsFile = (sandboxId: string) => `${stateDirectory}/tags-${sandboxId}.json`;

/** Reads the current tags from inside a container (falls back to the create-time label). */
export async function readTags(container: Docker.Container, sandboxId: string, signal?: AbortSignal): Promise<Record<string, string>> {
  const result = await runInContainer(container, ['cat', tagsFile(sandboxId)], { signal }).catch((error: unknown) => {
    throw mapDockerError(error, { operation: 'getTags', sandboxId });
  });
  if (result.exitCode === 0) return JSON.parse(result.stdout) as Record<string, string>;
  const info = await container.inspect().catch((error: unknown) => {
    throw mapDockerError(error, { operation: 'getTags', sandboxId });
  });
  return JSON.parse(info.Config.Labels?.[labels.tags] ?? '{}') as Record<string, string>;
}

/**
 * A small command of our own inside the container (state files, secrets): no wrapper, no
 * marker, output collected whole. For user commands, `exec` is the streaming path.
 */
export async function runInContainer(
  container: Docker.Container,
  argv: string[],
  options: { stdin?: Uint8Array; signal?: AbortSignal } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  options.signal?.throwIfAborted();
  const exec = await container.exec({ Cmd: argv, AttachStdin: options.stdin !== undefined, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: options.stdin !== undefined })) as unknown as Duplex;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks: Buffer[] = [];
  const errors: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  stderr.on('data', (chunk: Buffer) => errors.push(chunk));
  container.modem.demuxStream(stream, stdout, stderr);
  const done = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  if (options.stdin !== undefined) stream.end(options.stdin);
  await done;
  let info = await exec.inspect();
  for (let attempt = 0; info.Running && attempt < 100; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(chunks).toString('utf8'), stderr: Buffer.concat(errors).toString('utf8') };
}
