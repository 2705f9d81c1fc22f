/**
 * One command in a Docker container, on the kit's exec wrapper and `ProcessOutcome`.
 *
 * The engine gives an exec one hijacked socket (stdin in, multiplexed stdout/stderr out) and no
 * kill. Three things here keep a command from ever hanging its caller:
 * - the socket is demultiplexed into two bounded Web streams, paused only while one of them is
 *   full, and a cancelled side is discarded, so it never stalls the other;
 * - the exit is watched on its own (exec inspect, polled with backoff and woken by the socket's
 *   end), not inferred from the socket: a command that closed its stdout, or whose output nobody
 *   reads, still exits. After the exit the socket drains what is left (bounded), and stdin
 *   writes settle at once;
 * - the tree is killed by the wrapper's marker, from the host when the engine is local and we are
 *   root (that works even when the command exhausted the pids limit), else from inside.
 *
 * With `pty` the exec is the engine's own terminal (`Tty`): the socket carries the raw terminal
 * output (no frames), stderr is empty, the wrapper's report arrives `\r\n`-terminated, and a
 * resize is the engine's exec resize. Engine 20.10 (API 1.41) ignores `ConsoleSize` and starts
 * the terminal at 0x0, so `stty` sets the size inside before the wrapper runs; it gives no EOF for
 * a half-closed socket on a terminal, so closing stdin types one end-of-file character (Ctrl-D),
 * as util-linux `script` does for the kit's portable terminal.
 */
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import {
  ProcessOutcome,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  canScanHostProcesses,
  checkPtySize,
  parseOptions,
  ptyEnvironment,
  signalOptionsSchema,
  cancelledStreamWriterLimitBytes,
  killMarkedTreeArgv,
  newExecId,
  readStartMarker,
  signalFromExitCode,
  signalMarkedProcesses,
  type Command,
  type ExitStatus,
  type KillSignal,
  type LifecycleMember,
  type PtySize,
  type SignalOptions,
  type SandboxEmitter,
  type SandboxLifecycle,
  type SandboxProcess,
} from '../../src/kit/index.js';
import { runInContainer } from './docker-engine.js';
import { mapDockerError } from './docker-errors.js';
import { execCommand } from './docker-scripts.js';

/** Bytes a stream holds before the socket pauses (the reader's backpressure). */
const queuedBytes = 256 * 1024;
/** After the exit: what may queue while the socket drains (only what was in flight remains). */
const drainBytes = 8 * 1024 * 1024;
/** Bytes a command may write to a cancelled stream before it gets SIGPIPE (the kit's rule). */
const discardedBytesLimit = cancelledStreamWriterLimitBytes;
/** Bytes of stdin that may wait in the socket's queue before a write waits for it to drain. */
const stdinAheadBytes = 1024 * 1024;
/** Longest pause between two exit polls of a running command. */
const maxPollMs = 1_000;

/** What a command needs of its sandbox. */
export interface DockerExecContext {
  sandboxId: string;
  container: Docker.Container;
  lifecycle: SandboxLifecycle;
  events: SandboxEmitter;
  /** The create env (secrets are loaded by the prelude, not here). */
  env: Record<string, string>;
  workdir: string;
  /** The engine runs on this host: marked processes can be signalled from here. */
  engineIsLocal: boolean;
  /** Whether the container's memory cgroup OOM-killed a process since last asked. */
  oomKilled: () => Promise<boolean>;
}

export interface DockerExecRequest {
  command: Command;
  argv: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** The create-time `command`: its end is the keeper's (and so the container's) end. */
  entrypoint?: boolean;
  /** The engine's `User` for the exec (`'0'` for sandport's own file work). @default the image's user */
  user?: string;
  /** Run on the engine's terminal of this size (validated). @default pipes */
  pty?: PtySize | undefined;
}

/** The end-of-file character of a terminal in canonical mode (VEOF, Ctrl-D). */
const endOfFile = new Uint8Array([0x04]);

/** One output side of the socket: a bounded, pull-based Web stream. */
class Output {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #done = false;
  #cancelled = false;

  constructor(onPull: () => void, onCancel: () => void) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: onPull,
        cancel: () => {
          this.#done = true;
          this.#cancelled = true;
          onCancel();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: queuedBytes }),
    );
  }

  /** Closed, errored or cancelled: data for it is discarded. */
  get done(): boolean {
    return this.#done;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Queues a chunk; returns false when it was discarded (the side is done). */
  push(chunk: Uint8Array): boolean {
    if (this.#done) return false;
    this.#controller.enqueue(chunk);
    return true;
  }

  /** Whether at least `limit` bytes wait for the reader. */
  holds(limit: number): boolean {
    return !this.#done && (this.#controller.desiredSize ?? 0) <= queuedBytes - limit;
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.close();
  }

  error(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.error(error);
  }
}

/**
 * Splits the engine's multiplexed stream (8-byte frame headers: type, 0, 0, 0, size) into stdout
 * and stderr without copying payloads, pausing the socket while either side is full.
 * docker-modem's own demuxer ignores backpressure, which buffers without bound.
 */
class Demux {
  readonly stdout: Output;
  readonly stderr: Output;
  #header: Buffer = Buffer.alloc(0);
  #remaining = 0;
  #target: Output | undefined;
  #paused = false;
  #limit = queuedBytes;

  #discarded = 0;

  /**
   * `onCancel`: a reader cancelled its side. `onKeepsWriting`: the command wrote more than
   * `discardedBytesLimit` to a cancelled side since, where a closed pipe would have ended it.
   */
  constructor(
    private readonly socket: Duplex,
    onCancel: () => void,
    private readonly onKeepsWriting: () => void,
    /** A terminal's socket: no frames, every byte is stdout, and stderr stays empty. */
    private readonly tty = false,
  ) {
    this.stdout = new Output(() => this.resumeIfRoom(), onCancel);
    this.stderr = new Output(() => this.resumeIfRoom(), onCancel);
    if (tty) this.stderr.end();
    socket.on('data', (chunk: Buffer) => this.take(chunk));
  }

  /** Lets the socket run ahead of the reader up to `drainBytes` (the command has exited). */
  drain(): void {
    this.#limit = drainBytes;
    this.resumeIfRoom();
  }

  resumeIfRoom(): void {
    if (!this.#paused || this.stdout.holds(this.#limit) || this.stderr.holds(this.#limit)) return;
    this.#paused = false;
    this.socket.resume();
  }

  end(): void {
    this.stdout.end();
    this.stderr.end();
  }

  error(error: unknown): void {
    this.stdout.error(error);
    this.stderr.error(error);
  }

  #countDiscarded(bytes: number): void {
    const before = this.#discarded;
    this.#discarded += bytes;
    if (before <= discardedBytesLimit && this.#discarded > discardedBytesLimit) this.onKeepsWriting();
  }

  private take(chunk: Buffer): void {
    if (this.tty) {
      if (!this.stdout.push(chunk) && this.stdout.cancelled) this.#countDiscarded(chunk.length);
      this.#pauseIfFull();
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining === 0) {
        const needed = 8 - this.#header.length;
        const piece = chunk.subarray(offset, offset + needed);
        this.#header = this.#header.length === 0 ? piece : Buffer.concat([this.#header, piece]);
        offset += piece.length;
        if (this.#header.length < 8) break;
        this.#target = this.#header[0] === 2 ? this.stderr : this.stdout;
        this.#remaining = this.#header.readUInt32BE(4);
        this.#header = Buffer.alloc(0);
        continue;
      }
      const size = Math.min(this.#remaining, chunk.length - offset);
      if (!this.#target!.push(chunk.subarray(offset, offset + size)) && this.#target!.cancelled) this.#countDiscarded(size);
      offset += size;
      this.#remaining -= size;
    }
    this.#pauseIfFull();
  }

  #pauseIfFull(): void {
    if (!this.#paused && (this.stdout.holds(this.#limit) || this.stderr.holds(this.#limit))) {
      this.#paused = true;
      this.socket.pause();
    }
  }
}

/** Signals the command's tree by its marker. */
async function killTree(context: DockerExecContext, execId: string, signal: KillSignal): Promise<void> {
  if (context.engineIsLocal && canScanHostProcesses() && (await signalMarkedProcesses(execId, signal)) > 0) return;
  if (!context.lifecycle.isRunning()) return;
  try {
    await runInContainer(context.container, killMarkedTreeArgv(execId, signal));
  } catch (error) {
    if (context.lifecycle.isRunning()) throw mapDockerError(error, { operation: 'kill', sandboxId: context.sandboxId });
  }
}

/** Starts a command; resolves once it runs. Rejects with typed start errors (cwd, command, gone). */
export async function startDockerExec(context: DockerExecContext, request: DockerExecRequest): Promise<SandboxProcess> {
  const { lifecycle, sandboxId, container } = context;
  const execId = newExecId();
  /** Whether the engine created the exec (until then there is nothing of it to kill). */
  let created = false;
  const outcome = new ProcessOutcome({
    provider: 'docker',
    sandboxId,
    events: context.events,
    command: request.command,
    execId,
    lifecycle,
    timeoutMs: request.timeoutMs,
    signal: request.signal,
    // An exec the engine never created has nothing to kill. Its kill sends no exec into the
    // container either: after a start refused by a paused container, that exec could land as
    // the container is paused again, and an exec a freeze catches starting wedges the engine's
    // every call on that container until it thaws.
    kill: (signal) => (created ? killTree(context, execId, signal) : Promise.resolve()),
  });
  const { pty } = request;
  const merged = { ...context.env, ...request.env };
  const env = { ...(pty ? ptyEnvironment(merged) : merged), SANDPORT_EXEC_ENV: Object.keys(request.env ?? {}).join(' ') };
  const starting = (async () => {
    const exec = await container.exec({
      Cmd: terminalCommand(execCommand(execId, request.argv, request.cwd ?? context.workdir, request.entrypoint === true), pty),
      Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: pty !== undefined,
      ...(pty ? { ConsoleSize: [pty.rows, pty.cols] } : {}),
      ...(request.user === undefined ? {} : { User: request.user }),
    });
    created = true;
    // Given up meanwhile (an early abort or timeout): never start it.
    if (outcome.done) throw outcome.failed;
    const socket = (await exec.start({ hijack: true, stdin: true, Tty: pty !== undefined })) as unknown as Duplex;
    const process = new DockerSandboxProcess(context, outcome, exec, socket, pty !== undefined);
    const { report, stdout } = await readStartMarker(internals.rawStdout(process));
    if (outcome.done) {
      // It started after the caller gave up: end it now that its marker is on every process.
      void killTree(context, execId, 'SIGKILL')
        .catch(() => undefined)
        .finally(() => socket.destroy());
      throw outcome.failed;
    }
    return { process, report, stdout };
  })();
  let started: Awaited<typeof starting>;
  try {
    started = await outcome.startup(starting);
  } catch (error) {
    outcome.abandon();
    // An early abort or timeout: the caller gets exactly that reason.
    if (outcome.failed !== undefined) throw outcome.failed;
    if (!lifecycle.isRunning()) throw lifecycle.notFound();
    throw mapDockerError(error, { operation: 'exec', sandboxId });
  }
  const { process, report, stdout } = started;
  if (report !== 'ok') {
    internals.discard(process);
    outcome.abandon();
    if (report === 'cwd')
      throw new SandboxInvalidArgumentError({
        message: `The working directory does not exist in sandbox ${sandboxId}`,
        argument: 'cwd',
        provider: 'docker',
      });
    if (report === 'command')
      throw new SandboxInvalidArgumentError({
        message: `Command not found in sandbox ${sandboxId}: ${request.argv[0]}`,
        argument: 'command',
        provider: 'docker',
      });
    if (!lifecycle.isRunning()) throw lifecycle.notFound();
    throw new SandboxProviderError({
      message: `The command did not start in sandbox ${sandboxId} (no report from the wrapper)`,
      provider: 'docker',
    });
  }
  internals.begin(process, stdout);
  outcome.started();
  return process;
}

/**
 * Sizes the engine's terminal from inside before the wrapper runs: `ConsoleSize` needs API 1.42,
 * and a resize after the start would race the command. An image without `stty` keeps 0x0.
 */
function terminalCommand(cmd: string[], pty: PtySize | undefined): string[] {
  if (!pty) return cmd;
  const [shell, flag, script, ...rest] = cmd;
  return [shell!, flag!, `stty rows ${pty.rows} cols ${pty.cols} 2>/dev/null\n${script!}`, ...rest];
}

/** What `startDockerExec` reaches of a process; users never can (private members). */
let internals: {
  /** stdout as it comes off the socket, marker included. */
  rawStdout(process: DockerSandboxProcess): ReadableStream<Uint8Array>;
  begin(process: DockerSandboxProcess, stdout: ReadableStream<Uint8Array>): void;
  discard(process: DockerSandboxProcess): void;
};

/** A command running in a Docker sandbox. */
export class DockerSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  #stdout!: ReadableStream<Uint8Array>;
  readonly #context: DockerExecContext;
  readonly #outcome: ProcessOutcome;
  readonly #exec: Docker.Exec;
  readonly #socket: Duplex;
  readonly #demux: Demux;
  #socketEnded = false;
  #exited = false;
  readonly #exitListeners = new Set<() => void>();
  #wake: (() => void) | undefined;
  readonly #tty: boolean;
  /** Present on a `pty` process only (see `SandboxProcess.resize`). */
  declare resize?: (size: PtySize, options?: SignalOptions) => Promise<void>;

  /** @internal Made by `startDockerExec`. */
  constructor(context: DockerExecContext, outcome: ProcessOutcome, exec: Docker.Exec, socket: Duplex, tty = false) {
    this.#context = context;
    this.#outcome = outcome;
    this.#exec = exec;
    this.#socket = socket;
    this.#tty = tty;
    if (tty) this.resize = (size, options) => this.#resize(size, options);
    // A cancelled side is discarded, so it never stalls the other; a command that keeps writing
    // to it gets SIGPIPE, as it would writing to a pipe whose reader closed it.
    this.#demux = new Demux(
      socket,
      () => this.#releaseIfDone(),
      () => void outcome.kill('SIGPIPE').catch(() => undefined),
      tty,
    );
    const ended = () => {
      if (this.#socketEnded) return;
      this.#socketEnded = true;
      this.#demux.end();
      this.#wakeUp();
    };
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('error', (error: unknown) => {
      // After the end (terminate, the container gone) the streams just end; before, they fail typed.
      if (this.#exited || !context.lifecycle.isRunning()) this.#demux.end();
      else this.#demux.error(mapDockerError(error, { operation: 'exec stream', sandboxId: context.sandboxId }));
      ended();
    });
    this.stdin = this.#stdinStream();
  }

  static {
    internals = {
      rawStdout: (process) => process.#demux.stdout.stream,
      begin: (process, stdout) => process.#begin(stdout),
      discard: (process) => process.#discard(),
    };
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#stdout;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#demux.stderr.stream;
  }

  /** The command runs: watch for its exit. */
  #begin(stdout: ReadableStream<Uint8Array>): void {
    this.#stdout = stdout;
    // The sandbox's end wakes the exit watch at once (the outcome records the failure).
    const member: LifecycleMember = { sandboxEnded: () => this.#wakeUp() };
    const untrack = this.#context.lifecycle.track(member);
    void this.#watchExit().finally(untrack);
  }

  /** The command never started: close everything. */
  #discard(): void {
    this.#exited = true;
    this.#socket.destroy();
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  /** The engine's exec resize; after the exit (or once the sandbox ended) a no-op. */
  async #resize(size: PtySize, options: SignalOptions | undefined): Promise<void> {
    const checked = checkPtySize(size, 'docker');
    const { signal } = parseOptions(signalOptionsSchema, options, { provider: 'docker', what: 'resize options' });
    signal?.throwIfAborted();
    if (this.#exited || this.#outcome.done || !this.#context.lifecycle.isRunning()) return;
    try {
      await this.#exec.resize({ h: checked.rows, w: checked.cols, ...(signal ? { abortSignal: signal } : {}) });
    } catch (error) {
      signal?.throwIfAborted();
      if (this.#exited || this.#outcome.done || !this.#context.lifecycle.isRunning()) return;
      // The engine refuses a resize of an exec that has just ended: check before calling it an error.
      const info = await this.#exec.inspect().catch(() => undefined);
      if (info && !info.Running) return;
      throw mapDockerError(error, { operation: 'resize', sandboxId: this.#context.sandboxId });
    }
  }

  kill(signal?: KillSignal): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Polls exec inspect until the command has exited (woken early by the socket's end or the sandbox's). */
  async #watchExit(): Promise<void> {
    const { lifecycle, sandboxId } = this.#context;
    let delay = 20;
    let failures = 0;
    for (;;) {
      await this.#pause(this.#socketEnded ? 5 : delay);
      if (!lifecycle.isRunning()) return this.#finish(137);
      let info: Docker.ExecInspectInfo;
      try {
        info = await this.#exec.inspect();
        failures = 0;
      } catch (error) {
        if (!lifecycle.isRunning()) continue;
        const mapped = mapDockerError(error, { operation: 'exec inspect', sandboxId });
        if (mapped.code === 'sandbox_not_found' || ++failures > 10) {
          this.#outcome.fail(mapped);
          return this.#finish(137);
        }
        delay = maxPollMs;
        continue;
      }
      if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return this.#finish(info.ExitCode);
      delay = Math.min(delay * 2, maxPollMs);
    }
  }

  async #finish(exitCode: number): Promise<void> {
    // The engine reports only a number; 128 + n is the shell's convention for death by signal n.
    const signal = signalFromExitCode(exitCode);
    this.#exited = true;
    for (const listener of this.#exitListeners) listener();
    this.#exitListeners.clear();
    // First let the engine finish copying: while it is blocked on our socket, the engine starts
    // no other exec in this container (the OOM check below is one).
    this.#demux.drain();
    this.#releaseIfDone();
    const oomKilled = signal === 'SIGKILL' && this.#context.lifecycle.isRunning() && (await this.#context.oomKilled().catch(() => false));
    this.#outcome.exited(oomKilled ? { exitCode, signal, oomKilled: true } : { exitCode, signal });
  }

  /** Once the command exited and nobody reads either side any more, the socket goes. */
  #releaseIfDone(): void {
    if (this.#exited && this.#demux.stdout.cancelled && this.#demux.stderr.cancelled) this.#socket.destroy();
  }

  /** Resolves on `events` of the socket, or at the exit. */
  #until(events: string[]): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        for (const event of events) this.#socket.off(event, done);
        this.#exitListeners.delete(done);
        resolve();
      };
      for (const event of events) this.#socket.on(event, done);
      this.#exitListeners.add(done);
    });
  }

  /**
   * stdin with backpressure (each write waits for the socket to drain). Once the command has
   * exited, what is written goes nowhere, as into a pipe nobody reads any more: writes and
   * `close` resolve, and a pending write settles at the exit. (A rejected write would leave the
   * stream errored, and a later `close` would then reject with a raw `TypeError`.)
   */
  #stdinStream(): WritableStream<Uint8Array> {
    const socket = this.#socket;
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (!(chunk instanceof Uint8Array))
          throw new SandboxInvalidArgumentError({ message: 'stdin accepts Uint8Array chunks only', argument: 'stdin', provider: 'docker' });
        if (this.#exited || socket.destroyed || socket.writableEnded) return;
        // Up to `stdinAheadBytes` stay queued in the socket, so the engine never idles between two
        // writes; past that, the write waits for the drain (bounded memory, backpressure).
        socket.write(chunk);
        if (socket.writableLength > stdinAheadBytes) await this.#until(['drain', 'close', 'error']);
      },
      close: async () => {
        if (this.#exited || socket.destroyed || socket.writableEnded) return;
        // The engine's terminal ignores a half-close: end of input is the terminal's EOF character.
        if (this.#tty) {
          socket.write(endOfFile);
          return;
        }
        const flushed = this.#until(['finish', 'close', 'error']);
        socket.end();
        await flushed;
      },
      abort: () => {
        if (!socket.destroyed && !socket.writableEnded) socket.end();
      },
    });
  }
}
