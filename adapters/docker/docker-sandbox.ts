import { randomBytes } from 'node:crypto';
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
} from '../../src/index.js';
import { mapDockerError } from './docker-errors.js';
import { DockerSandboxProcess, execWrapper } from './docker-exec.js';
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
} as const;

/** Inside the container: where the lifetime deadline and the mutable tags live. */
export const stateDirectory = '/.sandport';

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
  private readonly waitForExit: Promise<Ended>;

  /** @internal */
  constructor(private readonly init: DockerSandboxInit) {
    this.id = init.id;
    this.name = init.name;
    this.warnings = init.warnings;
    this.expiresAt = init.expiresAt;
    this.files = new DockerFiles(this, init.container, init.workdir);
    this.armLifetime();
    this.touch();
    this.waitForExit = (async () => {
      await init.container.wait().catch(() => undefined);
      const reason = this.terminatedByUs ? 'terminated' : Date.now() >= this.expiresAt - 1_000 ? 'lifetime-timeout' : 'crashed';
      return this.settle({ state: 'terminated', reason });
    })();
  }

  /** The dockerode container, for what the contract does not cover. */
  get native(): Docker.Container {
    return this.init.container;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<DockerSandboxProcess> {
    const parsed = parseOptions(execOptionsSchema, options, { provider: 'docker', what: 'exec options' });
    const argv = parseOptions(commandSchema, command, { provider: 'docker', what: 'command' });
    const args = typeof argv === 'string' ? ['/bin/sh', '-c', argv] : [...argv];
    parsed.signal?.throwIfAborted();
    this.assertRunning();
    this.touch();
    const execId = `e${randomBytes(6).toString('hex')}`;
    const env = { ...this.init.env, ...parsed.env, SANDPORT_EXEC_ID: execId };
    let exec: Docker.Exec;
    let socket: import('node:stream').Duplex;
    try {
      exec = await this.init.container.exec({
        Cmd: ['/bin/sh', '-c', execWrapper, 'sandport', parsed.cwd ?? this.init.workdir, ...args],
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
          this.init.events.emit('exec-end', { provider: 'docker', sandboxId: this.id, execId, exitCode: undefined, signal: undefined, durationMs: 0 });
        },
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
    // Labels are fixed at create, so the current tags live in a file inside the container.
    await this.files.write(tagsFile(this.id), JSON.stringify(tags), options);
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
      await this.files.write(`${stateDirectory}/deadline`, `${Math.ceil(expiresAt / 1000)}\n`, options);
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

  private gone(): SandboxNotFoundError {
    return new SandboxNotFoundError({ message: `Sandbox ${this.id} is no longer running`, sandboxId: this.id, provider: 'docker' });
  }
}

/** Named after the container, so that a snapshot's copy of it does not speak for a new sandbox. */
const tagsFile = (sandboxId: string) => `${stateDirectory}/tags-${sandboxId}.json`;

/** Reads the current tags from inside a container (falls back to the create-time label). */
export async function readTags(container: Docker.Container, sandboxId: string, signal?: AbortSignal): Promise<Record<string, string>> {
  const files = new DockerFiles({ exec: () => Promise.reject(new Error('unused')), run: () => Promise.reject(new Error('unused')), touch: () => undefined, assertRunning: () => undefined }, container, '/');
  try {
    return JSON.parse(new TextDecoder().decode(await files.read(tagsFile(sandboxId), { signal }))) as Record<string, string>;
  } catch (error) {
    if ((error as { code?: string }).code !== 'file_not_found') throw error;
    const info = await container.inspect();
    return JSON.parse(info.Config.Labels?.[labels.tags] ?? '{}') as Record<string, string>;
  }
}
