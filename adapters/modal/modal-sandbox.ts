import { randomBytes } from 'node:crypto';
import type { ContainerProcess, FileInfo as ModalFileInfo, ModalClient, Sandbox as ModalSdkSandbox } from 'modal';
import {
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkSandboxPath,
  commandSchema,
  execOptionsSchema,
  parseOptions,
  raceWithSignal,
  readBytes,
  runOptionsSchema,
  runViaExec,
  type Command,
  type ExecOptions,
  type ExecResult,
  type ExitStatus,
  type FileInfo,
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
  signalFromExitCode,
  watchExecLimits,
  checkFileMode,
} from '../../src/kit/index.js';
import { mapModalError } from './modal-errors.js';

type Ended = Extract<SandboxStatus, { state: 'terminated' }>;

/** The SDK's own file tool; its read and write are streamed here because the SDK's API buffers. */
const fsTools = '/__modal/.bin/modal-sandbox-fs-tools';

/**
 * Every command runs under this wrapper. It marks the command's process tree with an
 * environment variable (Modal has no kill: `kill()` finds the tree by that marker), checks the
 * working directory and the program so that those are typed errors, reports "ok" as the first
 * stdout line, then execs the command with its argv untouched.
 */
const execWrapper = [
  'SANDPORT_EXEC_ID=$1; export SANDPORT_EXEC_ID',
  'if [ -n "$2" ]; then cd "$2" 2>/dev/null || { echo sandport:cwd; exit 127; }; fi',
  'shift 2',
  'command -v "$1" >/dev/null 2>&1 || { echo sandport:command; exit 127; }',
  'echo sandport:ok',
  'exec "$@"',
].join('\n');

/** Signals every process carrying the exec's marker, repeating for SIGKILL to catch late forks. */
const killScript = [
  'sig=$1; marker="SANDPORT_EXEC_ID=$2"',
  'for round in 1 2 3 4 5; do',
  '  found=',
  '  for dir in /proc/[0-9]*; do',
  '    pid=${dir#/proc/}; [ "$pid" = "$$" ] && continue',
  '    if tr "\\0" "\\n" < "$dir/environ" 2>/dev/null | grep -qxF "$marker"; then kill -s "$sig" "$pid" 2>/dev/null && found=1; fi',
  '  done',
  '  [ -n "$found" ] && [ "$sig" = KILL ] || break',
  'done',
].join('\n');


/** GenericResult.status values the control plane reports for a finished sandbox. */
const resultStatus = { success: 1, failure: 2, terminated: 3, timeout: 4, idleTimeout: 7 } as const;

export interface ModalSandboxInit {
  sdk: ModalSdkSandbox;
  client: ModalClient;
  name: string | undefined;
  workdir: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** False for a wrapped sandbox: the caller keeps its lifecycle, terminate only detaches. */
  ownsLifecycle: boolean;
}

/** A Modal sandbox behind the neutral contract. `native` is the SDK's object. */
export class ModalSandbox implements Sandbox {
  readonly provider = 'modal';
  readonly id: string;
  readonly name: string | undefined;
  readonly files: ModalFiles;
  readonly warnings: readonly SandboxWarning[];
  private terminated: Ended | undefined;
  private detached = false;
  private workdir: Promise<string> | undefined;

  /** @internal */
  constructor(private readonly init: ModalSandboxInit) {
    this.id = init.sdk.sandboxId;
    this.name = init.name;
    this.warnings = init.warnings;
    this.files = new ModalFiles(this);
    if (init.workdir) this.workdir = Promise.resolve(init.workdir);
  }

  /** The `modal` SDK's `Sandbox`, for what the neutral API does not cover. */
  get native(): ModalSdkSandbox {
    return this.init.sdk;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<SandboxProcess> {
    const parsed = parseOptions(execOptionsSchema, options, { provider: 'modal', what: 'exec options' });
    const argv = parseOptions(commandSchema, command, { provider: 'modal', what: 'command' });
    parsed.signal?.throwIfAborted();
    this.assertRunning();
    const execId = randomBytes(8).toString('hex');
    const started = (async () => {
      const process = await this.init.sdk
        .exec(['/bin/sh', '-c', execWrapper, 'sandport-exec', execId, parsed.cwd ?? '', ...(typeof argv === 'string' ? ['/bin/sh', '-c', argv] : argv)], {
          mode: 'binary',
          env: parsed.env,
        })
        .catch((error: unknown) => {
          throw this.mapError(error, 'exec');
        });
      return ModalSandboxProcess.start(this, process, execId, parsed.timeoutMs, parsed.signal);
    })();
    const process = await raceWithSignal(started, { signal: parsed.signal, operation: 'exec', provider: 'modal', onAbort: () => void started.then((p) => p.kill(), () => undefined) });
    this.init.events.emit('exec-start', { provider: 'modal', sandboxId: this.id, execId, command });
    return process;
  }

  run(command: Command, options: RunOptions = {}): Promise<ExecResult> {
    const parsed = parseOptions(runOptionsSchema, options, { provider: 'modal', what: 'run options' });
    return runViaExec((c, o) => this.exec(c, o), command, parsed, 'modal');
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    const tunnels = await this.call('tunnels', () => this.init.sdk.tunnels(), options);
    return Object.fromEntries(
      Object.entries(tunnels).map(([port, tunnel]) => {
        // Unencrypted ports carry a plain TCP endpoint; encrypted ones only the TLS endpoint.
        const plain = tunnel.unencryptedHost !== undefined && tunnel.unencryptedHost !== '' && tunnel.unencryptedPort !== undefined && tunnel.unencryptedPort !== 0;
        const [host, hostPort] = plain ? tunnel.tcpSocket : tunnel.tlsSocket;
        const encrypted = !plain;
        return [Number(port), { port: Number(port), host, hostPort, encrypted, url: encrypted ? tunnel.url : `http://${host}:${hostPort}` } satisfies Tunnel];
      }),
    );
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const image = await this.call('snapshot', () => this.init.sdk.snapshotFilesystem(), options);
    return { type: 'snapshot', provider: 'modal', id: image.imageId };
  }

  async setTags(tags: Record<string, string>, options: SignalOptions = {}): Promise<void> {
    await this.call('setTags', () => this.init.sdk.setTags({ ...tags }), options);
  }

  async getTags(options: SignalOptions = {}): Promise<Record<string, string>> {
    return this.call('getTags', () => this.init.sdk.getTags(), options);
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    return (await this.status(0, options.signal).catch((error: unknown) => {
      if (this.terminated && SandboxNotFoundError.isInstance(error)) return this.terminated;
      throw error;
    })) ?? { state: 'running' };
  }

  async wait(options: SignalOptions = {}): Promise<Ended> {
    options.signal?.throwIfAborted();
    for (;;) {
      const ended = await this.status(10, options.signal).catch((error: unknown) => {
        if (this.terminated && SandboxNotFoundError.isInstance(error)) return this.terminated;
        throw error;
      });
      if (ended) return ended;
    }
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (this.terminated || this.detached) return;
    if (!this.init.ownsLifecycle) {
      // The caller owns this sandbox: let go of it, leave it running.
      this.init.sdk.detach();
      this.detached = true;
      return;
    }
    await raceWithSignal(
      this.init.sdk.terminate().catch((error: unknown) => {
        const mapped = this.mapError(error, 'terminate');
        if (!SandboxNotFoundError.isInstance(mapped)) throw mapped; // already gone: terminate is idempotent
      }),
      { signal: options.signal, operation: 'terminate', provider: 'modal' },
    );
    this.terminated = { state: 'terminated', reason: 'terminated' };
    this.init.sdk.detach(); // releases the router channel now rather than after its idle timeout
    this.init.events.emit('sandbox-terminated', { provider: 'modal', sandboxId: this.id, reason: 'terminated' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** @internal */
  assertRunning(): void {
    if (this.detached) throw new SandboxNotFoundError({ message: `Sandbox ${this.id} was detached from (it may still run; the caller owns it)`, sandboxId: this.id, provider: 'modal' });
    if (this.terminated) throw new SandboxNotFoundError({ message: `Sandbox ${this.id} is no longer running (${this.terminated.reason})`, sandboxId: this.id, provider: 'modal' });
  }

  /** @internal */
  mapError(error: unknown, operation: string, path?: string) {
    return mapModalError(error, { operation, sandboxId: this.id, path });
  }

  /** @internal The SDK, for the file and process helpers. */
  get sdk(): ModalSdkSandbox {
    return this.init.sdk;
  }

  /** @internal The default working directory, asked once when the sandbox was not created here. */
  resolvePath(path: string): Promise<string> {
    if (typeof path === 'string' && path.startsWith('/')) return Promise.resolve(checkSandboxPath(path, '/', 'modal'));
    this.workdir ??= this.run(['pwd']).then((result) => result.stdout.trim() || '/');
    return this.workdir.then((workdir) => checkSandboxPath(path, workdir, 'modal'));
  }

  /** @internal Runs an SDK call with the liveness check, error mapping and the caller's signal. */
  async call<T>(operation: string, body: () => Promise<T>, options: SignalOptions = {}, path?: string): Promise<T> {
    options.signal?.throwIfAborted();
    this.assertRunning();
    const promise = body().catch((error: unknown) => {
      throw this.mapError(error, operation, path);
    });
    return raceWithSignal(promise, { signal: options.signal, operation, provider: 'modal' });
  }

  /**
   * The sandbox's end, with its reason. The SDK's public `poll()` folds the result into one
   * exit code (137 for terminated, 124 for timeout), which loses idle timeouts and entrypoint
   * codes; the same RPC's result keeps them, so it is read from the client directly.
   */
  private async status(timeoutSecs: number, signal?: AbortSignal): Promise<Ended | undefined> {
    const cp = this.init.client.cpClient;
    const request = { sandboxId: this.id, timeout: timeoutSecs };
    const v1 = /^sb-[A-Za-z0-9]{22}$/.test(this.id);
    const response = await raceWithSignal(
      (v1 ? cp.sandboxWait(request) : cp.sandboxWaitV2(request)).catch((error: unknown) => {
        throw this.mapError(error, 'wait');
      }),
      { signal, operation: 'wait', provider: 'modal' },
    );
    const result = response.result;
    if (!result || result.status === 0) return undefined;
    switch (result.status) {
      case resultStatus.terminated:
        return { state: 'terminated', reason: 'terminated' };
      case resultStatus.timeout:
        return { state: 'terminated', reason: 'lifetime-timeout' };
      case resultStatus.idleTimeout:
        return { state: 'terminated', reason: 'idle-timeout' };
      case resultStatus.success:
      case resultStatus.failure:
        return { state: 'terminated', reason: 'entrypoint-exited', exitCode: result.exitcode };
      default:
        return { state: 'terminated', reason: 'crashed', exitCode: result.exitcode };
    }
  }
}

/** One command in a Modal sandbox. */
export class ModalSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  private readonly exited: Promise<ExitStatus>;
  private failure: unknown;
  private done = false;
  private killing: Promise<void> | undefined;

  private constructor(
    private readonly sandbox: ModalSandbox,
    process: ContainerProcess<Uint8Array>,
    stdout: ReadableStreamDefaultReader<Uint8Array>,
    pending: Uint8Array,
    private readonly execId: string,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ) {
    this.stdout = pullStream(stdout, pending);
    this.stderr = pullStream(process.stderr.getReader(), new Uint8Array());
    const stdin = process.stdin.getWriter();
    stdin.closed.catch(() => undefined);
    this.stdin = new WritableStream<Uint8Array>({
      write: (chunk) => stdin.write(chunk).catch((error: unknown) => Promise.reject(sandbox.mapError(error, 'stdin'))),
      close: () => stdin.close().catch((error: unknown) => Promise.reject(sandbox.mapError(error, 'stdin'))),
      abort: () => stdin.close().catch(() => undefined),
    });
    this.exited = process.wait().then(
      (code): ExitStatus => {
        this.done = true;
        // Modal reports a death by signal n as 128 + n, like a shell; so does sandport.
        return { exitCode: code, signal: signalFromExitCode(code) };
      },
      (error: unknown) => {
        this.done = true;
        throw sandbox.mapError(error, 'exec');
      },
    );
    this.exited.catch(() => undefined);
    // Modal's own exec timeout takes whole seconds and reports like an exit; sandport times
    // here and kills the tree itself.
    const stopWatching = watchExecLimits({
      timeoutMs,
      signal,
      provider: 'modal',
      stop: (reason) => {
        this.failure ??= reason;
        void this.kill();
      },
    });
    void this.exited.finally(stopWatching).catch(() => undefined);
  }

  /** @internal Reads the wrapper's status line, then hands over the streams. */
  static async start(
    sandbox: ModalSandbox,
    process: ContainerProcess<Uint8Array>,
    execId: string,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ModalSandboxProcess> {
    const reader = process.stdout.getReader();
    let head: Uint8Array = new Uint8Array();
    let newline = -1;
    while (newline < 0) {
      const next = await reader.read().catch((error: unknown) => {
        throw sandbox.mapError(error, 'exec');
      });
      if (next.done) break;
      head = concat(head, next.value);
      newline = head.indexOf(0x0a);
    }
    const status = newline < 0 ? '' : new TextDecoder().decode(head.subarray(0, newline));
    if (status !== 'sandport:ok') {
      reader.releaseLock();
      void process.stderr.cancel().catch(() => undefined);
      // No status line: the wrapper never ran, so the sandbox went away (or the image has no sh).
      await process.wait().catch((error: unknown) => {
        throw sandbox.mapError(error, 'exec');
      });
      if (status === 'sandport:cwd') throw new SandboxInvalidArgumentError({ message: `The working directory does not exist in sandbox ${sandbox.id}`, argument: 'cwd', provider: 'modal' });
      if (status === 'sandport:command') throw new SandboxInvalidArgumentError({ message: `Command not found in sandbox ${sandbox.id}`, argument: 'command', provider: 'modal' });
      throw new SandboxProviderError({ message: `The command did not start in sandbox ${sandbox.id} (does the image have /bin/sh?)`, provider: 'modal' });
    }
    return new ModalSandboxProcess(sandbox, process, reader, head.subarray(newline + 1), execId, timeoutMs, signal);
  }

  async wait(): Promise<ExitStatus> {
    const status = await this.exited;
    if (this.failure !== undefined) throw this.failure;
    return status;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.done) return;
    if (signal === 'SIGKILL' && this.killing) return this.killing;
    const attempt = (async () => {
      const killer = await this.sandbox.sdk.exec(['/bin/sh', '-c', killScript, 'sandport-kill', signal.replace(/^SIG/, ''), this.execId], { mode: 'binary', stdout: 'ignore', stderr: 'ignore' });
      await killer.wait();
    })().catch((error: unknown) => {
      const mapped = this.sandbox.mapError(error, 'kill');
      // A sandbox that is gone has killed the command already.
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
    });
    if (signal === 'SIGKILL') this.killing = attempt;
    await attempt;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** The sandbox's files through the SDK's filesystem API; reads and writes of streams go through its file tool. */
export class ModalFiles implements SandboxFiles {
  constructor(private readonly sandbox: ModalSandbox) {}

  async read(path: string, options: SignalOptions = {}): Promise<Uint8Array> {
    const target = await this.sandbox.resolvePath(path);
    return this.sandbox.call('read', () => this.sandbox.sdk.filesystem.readBytes(target), options, target);
  }

  async readText(path: string, options: SignalOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  async readStream(path: string, options: SignalOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const target = await this.sandbox.resolvePath(path);
    const info = await this.stat(target, options);
    if (info.type === 'directory') throw new SandboxInvalidArgumentError({ message: `Cannot read ${target}: it is a directory`, argument: 'path', provider: 'modal' });
    const process = await this.sandbox.call('read', () => this.sandbox.sdk.exec([fsTools, JSON.stringify({ ReadFile: { path: target } })], { mode: 'binary' }), options, target);
    void process.stdin.close().catch(() => undefined);
    const reader = process.stdout.getReader();
    const sandbox = this.sandbox;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await reader.read().catch((error: unknown) => Promise.reject(sandbox.mapError(error, 'read', target)));
          if (!next.done) return controller.enqueue(next.value);
          const code = await process.wait().catch((error: unknown) => Promise.reject(sandbox.mapError(error, 'read', target)));
          if (code === 0) return controller.close();
          const detail = new TextDecoder().decode(await process.stderr.readBytes().catch(() => new Uint8Array()));
          controller.error(new SandboxProviderError({ message: `Reading ${target} failed (exit ${code}): ${detail}`, provider: 'modal' }));
        },
        cancel: () => reader.cancel(),
      },
      { highWaterMark: 0 },
    );
  }

  async write(path: string, data: string | Uint8Array | ReadableStream<Uint8Array>, options: SignalOptions & { mode?: number } = {}): Promise<void> {
    const target = await this.sandbox.resolvePath(path);
    checkFileMode(options.mode, 'modal');
    if (data instanceof ReadableStream) await this.writeStream(target, data, options);
    else {
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      await this.sandbox.call('write', () => this.sandbox.sdk.filesystem.writeBytes(bytes, target), options, target);
    }
    if (options.mode !== undefined) {
      const result = await this.sandbox.run(['chmod', options.mode.toString(8), target], { signal: options.signal });
      if (result.exitCode !== 0) throw new SandboxProviderError({ message: `chmod ${target} failed: ${result.stderr}`, provider: 'modal' });
    }
  }

  async list(path: string, options: SignalOptions = {}): Promise<FileInfo[]> {
    const target = await this.sandbox.resolvePath(path);
    const entries = await this.sandbox.call('list', () => this.sandbox.sdk.filesystem.listFiles(target), options, target);
    return entries.map(toFileInfo).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string, options: SignalOptions = {}): Promise<FileInfo> {
    const target = await this.sandbox.resolvePath(path);
    return toFileInfo(await this.sandbox.call('stat', () => this.sandbox.sdk.filesystem.stat(target), options, target));
  }

  async exists(path: string, options: SignalOptions = {}): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === 'file_not_found') return false;
      throw error;
    }
  }

  async mkdir(path: string, options: SignalOptions = {}): Promise<void> {
    const target = await this.sandbox.resolvePath(path);
    await this.sandbox.call('mkdir', () => this.sandbox.sdk.filesystem.makeDirectory(target, { createParents: true }), options, target);
  }

  async remove(path: string, options: SignalOptions & { recursive?: boolean } = {}): Promise<void> {
    const target = await this.sandbox.resolvePath(path);
    await this.sandbox.call('remove', () => this.sandbox.sdk.filesystem.remove(target, { recursive: options.recursive ?? false }), options, target);
  }

  private async writeStream(target: string, data: ReadableStream<Uint8Array>, options: SignalOptions): Promise<void> {
    const process = await this.sandbox.call('write', () => this.sandbox.sdk.exec([fsTools, JSON.stringify({ WriteFile: { path: target } })], { mode: 'binary' }), options, target);
    void process.stdout.cancel().catch(() => undefined);
    const stderr: Promise<Uint8Array> = readBytes(process.stderr).catch(() => new Uint8Array());
    await raceWithSignal(data.pipeTo(process.stdin), { signal: options.signal, operation: 'write', provider: 'modal' }).catch((error: unknown) => {
      throw this.sandbox.mapError(error, 'write', target);
    });
    const code = await process.wait().catch((error: unknown) => Promise.reject(this.sandbox.mapError(error, 'write', target)));
    if (code === 0) return;
    const detail = new TextDecoder().decode(await stderr);
    const kind = /"error_kind"\s*:\s*"(\w+)"/.exec(detail)?.[1];
    if (kind === 'IsDirectory' || kind === 'NotDirectory') {
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${target}: ${kind === 'IsDirectory' ? 'it is a directory' : 'a parent is not a directory'}`, argument: 'path', provider: 'modal' });
    }
    throw new SandboxProviderError({ message: `Writing ${target} failed (exit ${code}): ${detail}`, provider: 'modal' });
  }
}

function toFileInfo(entry: ModalFileInfo): FileInfo {
  const type = entry.type === 'file' || entry.type === 'directory' || entry.type === 'symlink' ? entry.type : 'other';
  return {
    name: entry.name,
    path: entry.path,
    type,
    size: entry.size,
    mode: entry.mode & 0o7777,
    modifiedAt: Math.round(entry.modifiedTime * 1000),
    ...(type === 'symlink' && entry.symlinkTarget !== null ? { linkTarget: entry.symlinkTarget } : {}),
  };
}

/** A pull-based stream over an SDK reader, starting with bytes already read. */
function pullStream(reader: ReadableStreamDefaultReader<Uint8Array>, pending: Uint8Array): ReadableStream<Uint8Array> {
  let first: Uint8Array | undefined = pending.byteLength > 0 ? pending : undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (first) {
          const chunk = first;
          first = undefined;
          return controller.enqueue(chunk);
        }
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: () => reader.cancel(),
    },
    { highWaterMark: 0 },
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.byteLength + b.byteLength);
  joined.set(a);
  joined.set(b, a.byteLength);
  return joined;
}
