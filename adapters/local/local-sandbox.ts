import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:net';
import { Writable } from 'node:stream';
import { constants as osConstants } from 'node:os';
import {
  SandboxNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  ExecFiles,
  collect,
  commandSchema,
  concatBytes,
  execOptionsSchema,
  fromNodeReadable,
  parseOptions,
  runOptionsSchema,
  runViaExec,
  type Command,
  type ExecOptions,
  type ExecResult,
  type ExitStatus,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxSnapshotRef,
  type SandboxStatus,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
  watchExecLimits,
} from '../../src/kit/index.js';
import type { SandboxCgroups } from './local-cgroups.js';
import { cgroupTrampoline, execWrapper } from './local-scripts.js';
import type { LocalSystem } from './local-system.js';

type Ended = Extract<SandboxStatus, { state: 'terminated' }>;

export interface LocalSandboxInit {
  id: string;
  name: string | undefined;
  tags: Record<string, string>;
  dir: string;
  childPid: number;
  launcher: ChildProcess;
  launcherDone: Promise<void>;
  cgroups: SandboxCgroups | undefined;
  system: LocalSystem;
  env: Record<string, string>;
  workdir: string;
  tunnels: Record<number, { tunnel: Tunnel; server: Server }>;
  timeoutMs: number;
  idleTimeoutMs: number | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  takeSnapshot: (sandbox: LocalSandbox, options: SignalOptions) => Promise<SandboxSnapshotRef>;
  onEnd: (sandbox: LocalSandbox) => void;
}

/** A running bubblewrap sandbox. Obtain one from `LocalSandboxProvider.create`. */
export class LocalSandbox implements Sandbox {
  readonly provider = 'local';
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly createdAt = Date.now();
  private tags: Record<string, string>;
  private ended: Ended | undefined;
  private readonly endWaiters: Array<(status: Ended) => void> = [];
  private readonly running = new Set<LocalSandboxProcess>();
  private execCount = 0;
  private lifetimeTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private terminating: Promise<void> | undefined;
  private knownOomKills = 0;

  /** @internal */
  constructor(private readonly init: LocalSandboxInit) {
    this.id = init.id;
    this.name = init.name;
    this.tags = { ...init.tags };
    this.warnings = init.warnings;
    this.files = new ExecFiles(this, init.workdir, 'local');
    this.armLifetime(init.timeoutMs);
    this.touch();
    void init.launcherDone.then(() => {
      // The launcher only exits on its own when the sandbox died under us.
      if (!this.ended) void this.finish({ state: 'terminated', reason: this.terminating ? 'terminated' : 'crashed' });
    });
  }

  /** Host directory holding this sandbox's layer and sockets. Exposed for diagnostics. */
  get stateDir(): string {
    return this.init.dir;
  }

  get snapshot(): ((options?: SignalOptions) => Promise<SandboxSnapshotRef>) | undefined {
    return (options: SignalOptions = {}) => {
      this.assertRunning();
      options.signal?.throwIfAborted();
      return this.init.takeSnapshot(this, options);
    };
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<SandboxProcess> {
    const parsed = parseOptions(execOptionsSchema, options, { provider: 'local', what: 'exec options' });
    const argv = parseCommand(command);
    parsed.signal?.throwIfAborted();
    this.assertRunning();
    const execId = `e${++this.execCount}-${randomBytes(3).toString('hex')}`;
    const { cgroups, system } = this.init;
    if (cgroups) await cgroups.createLeaf(execId);
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        cgroupTrampoline,
        'sandport-exec',
        ...(cgroups?.procsFiles(execId) ?? []),
        '--',
        system.binaries.nsenter,
        '-t',
        String(this.init.childPid),
        '-U', '-m', '-p', '-n', '-i', '-u', '-r', '-w',
        // Without root, switching to uid 0 would call setgroups, which the user namespace denies;
        // our own uid already is the sandbox's root.
        ...(system.isRoot ? [] : ['--preserve-credentials']),
        '--',
        '/usr/bin/setpriv', '--bounding-set=-all', '--inh-caps=-all', '--no-new-privs', '--',
        '/bin/sh', '-c', execWrapper, 'sandport', parsed.cwd ?? this.init.workdir, ...argv,
      ],
      {
        // Without cgroups, the tree of an exec is found by this inherited marker (see kill()).
        env: { ...this.init.env, ...parsed.env, ...(cgroups ? {} : { SANDPORT_EXEC_ID: execId }) },
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
        // Without cgroups the process group is the only handle on the tree.
        detached: cgroups === undefined,
      },
    );
    const process = new LocalSandboxProcess(this, child, execId, argv, parsed.timeoutMs, parsed.signal);
    this.running.add(process);
    this.touch();
    try {
      await process.started;
    } catch (error) {
      this.running.delete(process);
      throw error;
    }
    this.init.events.emit('exec-start', { provider: 'local', sandboxId: this.id, execId, command });
    return process;
  }

  run(command: Command, options: RunOptions = {}): Promise<ExecResult> {
    const parsed = parseOptions(runOptionsSchema, options, { provider: 'local', what: 'run options' });
    return runViaExec((c, o) => this.exec(c, o), command, parsed, 'local');
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    return Object.fromEntries(Object.entries(this.init.tunnels).map(([port, { tunnel }]) => [port, tunnel]));
  }

  async setTags(tags: Record<string, string>, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    this.tags = { ...tags };
  }

  async getTags(options: SignalOptions = {}): Promise<Record<string, string>> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    return { ...this.tags };
  }

  /** Current tags without the liveness check, for `list`. @internal */
  get currentTags(): Record<string, string> {
    return { ...this.tags };
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new SandboxInvalidArgumentError({ message: 'timeoutMs must be a positive integer', argument: 'timeoutMs', provider: 'local' });
    }
    this.assertRunning();
    this.armLifetime(timeoutMs);
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    return this.ended ?? { state: 'running' };
  }

  wait(options: SignalOptions = {}): Promise<Ended> {
    options.signal?.throwIfAborted();
    if (this.ended) return Promise.resolve(this.ended);
    return new Promise<Ended>((resolve, reject) => {
      const onAbort = () => reject(options.signal!.reason);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.endWaiters.push((status) => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve(status);
      });
    });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    await this.finish({ state: 'terminated', reason: 'terminated' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** @internal Called by processes. */
  get execContext() {
    return { cgroups: this.init.cgroups, events: this.init.events };
  }

  /** @internal */
  assertRunning(): void {
    if (this.ended || this.terminating) {
      throw new SandboxNotFoundError({
        message: `Sandbox ${this.id} is no longer running (${this.ended?.reason ?? 'terminating'})`,
        sandboxId: this.id,
        provider: 'local',
      });
    }
  }

  /** @internal */
  isRunning(): boolean {
    return !this.ended && !this.terminating;
  }

  /** @internal A process ended; resets the idle clock and reports out-of-memory kills. */
  async processEnded(process: LocalSandboxProcess, killedBySignal: boolean): Promise<boolean> {
    this.running.delete(process);
    this.touch();
    if (!killedBySignal || !this.init.cgroups) return false;
    const kills = await this.init.cgroups.oomKills();
    const oom = kills > this.knownOomKills;
    this.knownOomKills = kills;
    return oom;
  }

  /** @internal Any file operation or exec counts as activity for the idle timeout. */
  touch(): void {
    if (this.init.idleTimeoutMs === undefined || this.ended) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const idleMs = this.init.idleTimeoutMs;
    this.idleTimer = setTimeout(() => {
      if (this.running.size > 0) return this.touch();
      void this.finish({ state: 'terminated', reason: 'idle-timeout' });
    }, idleMs);
    this.idleTimer.unref();
  }

  /** @internal The entrypoint exited. */
  entrypointExited(exitCode: number): void {
    void this.finish({ state: 'terminated', reason: 'entrypoint-exited', exitCode });
  }

  private armLifetime(timeoutMs: number): void {
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    this.lifetimeTimer = setTimeout(() => void this.finish({ state: 'terminated', reason: 'lifetime-timeout' }), timeoutMs);
    this.lifetimeTimer.unref();
  }

  private finish(status: Ended): Promise<void> {
    this.terminating ??= (async () => {
      if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
      if (this.idleTimer) clearTimeout(this.idleTimer);
      for (const process of this.running) process.sandboxEnded(status);
      for (const { server } of Object.values(this.init.tunnels)) server.close();
      // Closing the lifeline makes the launcher kill everything and remove the sandbox's files.
      this.init.launcher.stdin?.end();
      const forced = setTimeout(() => this.init.launcher.kill('SIGKILL'), 10_000);
      await this.init.launcherDone;
      clearTimeout(forced);
      this.ended = status;
      this.init.onEnd(this);
      this.init.events.emit('sandbox-terminated', { provider: 'local', sandboxId: this.id, reason: status.reason });
      for (const waiter of this.endWaiters.splice(0)) waiter(status);
    })();
    return this.terminating;
  }
}

/** One command running in a local sandbox. */
export class LocalSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves when the command is running; rejects when it could not start. @internal */
  readonly started: Promise<void>;
  private readonly exited: Promise<{ exitCode: number; signal: string | undefined; oomKilled: boolean }>;
  private failure: unknown;
  private readonly startedAt = Date.now();

  constructor(
    private readonly sandbox: LocalSandbox,
    private readonly child: ChildProcess,
    private readonly execId: string,
    argv: readonly string[],
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ) {
    child.stdin!.on('error', () => undefined);
    this.stdin = Writable.toWeb(child.stdin!) as WritableStream<Uint8Array>;
    this.stdout = fromNodeReadable(child.stdout!);
    this.stderr = fromNodeReadable(child.stderr!);
    const status = child.stdio[3] as import('node:stream').Readable;
    this.started = new Promise<void>((resolve, reject) => {
      let text = '';
      status.setEncoding('utf8');
      let settled = false;
      const sandboxId = sandbox.id;
      const settle = () => {
        if (settled) return;
        settled = true;
        const word = text.trim();
        if (word === 'ok') return resolve();
        if (word === 'cwd') {
          return reject(new SandboxInvalidArgumentError({ message: `The working directory does not exist in sandbox ${sandboxId}`, argument: 'cwd', provider: 'local' }));
        }
        if (word === 'command') {
          return reject(new SandboxInvalidArgumentError({ message: `Command not found in sandbox ${sandboxId}: ${argv[0]}`, argument: 'command', provider: 'local' }));
        }
        // nsenter could not enter: the sandbox is gone, or the host refused.
        void readTail(this.stderr).then((stderr) =>
          reject(
            sandbox.isRunning()
              ? new SandboxProviderError({ message: `Could not start a command in sandbox ${sandboxId}: ${stderr}`, provider: 'local' })
              : new SandboxNotFoundError({ message: `Sandbox ${sandboxId} is no longer running`, sandboxId, provider: 'local' }),
          ),
        );
      };
      status.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) settle();
      });
      status.on('end', settle);
      status.on('error', settle);
    });
    this.started.catch(() => undefined);
    const stopWatching = watchExecLimits({
      timeoutMs,
      signal,
      provider: 'local',
      stop: (reason) => {
        this.failure ??= reason;
        void this.kill();
      },
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signalName) => {
        stopWatching();
        const exitCode = code ?? 128 + (signalName ? osConstants.signals[signalName] : 0);
        void sandbox.processEnded(this, signalName !== null).then((oomKilled) => {
          void sandbox.execContext.cgroups?.releaseLeaf(execId);
          sandbox.execContext.events.emit('exec-end', {
            provider: 'local',
            sandboxId: sandbox.id,
            execId,
            exitCode,
            signal: signalName ?? undefined,
            durationMs: Date.now() - this.startedAt,
          });
          resolve({ exitCode, signal: signalName ?? undefined, oomKilled });
        });
      });
    });
  }

  async wait(): Promise<ExitStatus> {
    const result = await this.exited;
    if (this.failure !== undefined) throw this.failure;
    return result.oomKilled ? result : { exitCode: result.exitCode, signal: result.signal };
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const { cgroups } = this.sandbox.execContext;
    if (cgroups) {
      // nsenter stays outside the kill for gentle signals: it relays the command's fate on exit.
      await cgroups.kill(this.execId, signal, signal === 'SIGKILL' ? [] : [this.child.pid!]);
    } else {
      signalProcess(-this.child.pid!, signal);
      // Children that called setsid left the process group; they still carry the exec's marker.
      for (let sweep = 0; sweep < 3; sweep++) {
        const marked = await processesMarkedWith(`SANDPORT_EXEC_ID=${this.execId}`);
        if (marked.length === 0) break;
        for (const pid of marked) signalProcess(pid, signal);
      }
    }
  }

  /** @internal The sandbox ended while this command ran. */
  sandboxEnded(status: Ended): void {
    this.failure ??= new SandboxNotFoundError({
      message: `Sandbox ${this.sandbox.id} ended (${status.reason}) while the command was running`,
      sandboxId: this.sandbox.id,
      provider: 'local',
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** `process.kill` (a negative pid is a process group) that ignores processes already gone. */
function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function processesMarkedWith(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    if (environ.split('\0').includes(marker)) found.push(Number(entry));
  }
  return found;
}

function parseCommand(command: Command): string[] {
  const parsed = parseOptions(commandSchema, command, { provider: 'local', what: 'command' });
  return typeof parsed === 'string' ? ['/bin/sh', '-c', parsed] : [...parsed];
}

async function readTail(stream: ReadableStream<Uint8Array>): Promise<string> {
  const { chunks, total } = await collect(stream, 4000);
  return new TextDecoder().decode(concatBytes(chunks, total)).trim() || 'no diagnostics';
}
