import { readdir, readFile } from 'node:fs/promises';
import { PassThrough, Writable, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import {
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  fromNodeReadable,
  type ExitStatus,
  type SandboxProcess,
  signalFromExitCode,
  watchExecLimits,
} from '../../src/kit/index.js';
import { mapDockerError } from './docker-errors.js';

/**
 * Runs inside the container around every command: checks the working directory and the program,
 * reports on stdout with a NUL-led marker line that the host strips, then execs the command.
 */
export const wrapperChecks = [
  'cd -- "$1" 2>/dev/null || { printf "\\0SPX:cwd\\n"; exit 126; }',
  'shift',
  'case "$1" in */*) [ -f "$1" ] && [ -x "$1" ] ;; *) command -v -- "$1" >/dev/null 2>&1 ;; esac || { printf "\\0SPX:command\\n"; exit 127; }',
  'printf "\\0SPX:ok\\n"',
];
export const execWrapper = [...wrapperChecks, 'exec "$@"'].join('\n');

/**
 * The engine has no call to kill an exec, and a process that called setsid leaves the exec's
 * process group; every process started by an exec inherits SANDPORT_EXEC_ID, so this finds them.
 */
export const execKiller = [
  'for round in 1 2 3; do',
  '  for p in /proc/[0-9]*; do',
  '    if tr "\\0" "\\n" < "$p/environ" 2>/dev/null | grep -qx "SANDPORT_EXEC_ID=$1"; then kill -s "$2" "${p#/proc/}" 2>/dev/null; fi',
  '  done',
  'done',
].join('\n');

/** Calls `listener` once, on whichever of `events` comes first, and forgets the others. */
function onceEither(emitter: NodeJS.EventEmitter, events: string[], listener: () => void): void {
  const handler = () => {
    for (const event of events) emitter.off(event, handler);
    listener();
  };
  for (const event of events) emitter.on(event, handler);
}

/**
 * Splits the engine's multiplexed exec stream (8-byte frame headers) into stdout and stderr,
 * pausing the socket while either side is full. docker-modem's own demuxer ignores the return
 * value of `write`, which would buffer without bound behind a slow reader.
 */
function demux(socket: Duplex, stdout: PassThrough, stderr: PassThrough): void {
  let pending: Buffer = Buffer.alloc(0);
  let waiting = 0;
  const resume = () => {
    if (--waiting === 0) socket.resume();
  };
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const target = pending[0] === 2 ? stderr : stdout;
      const payload = pending.subarray(8, 8 + size);
      pending = pending.subarray(8 + size);
      // A side whose reader cancelled is dropped, so it can never stall the other side.
      if (target.destroyed) continue;
      if (!target.write(payload)) {
        waiting++;
        socket.pause();
        onceEither(target, ['drain', 'close'], resume);
      }
    }
  });
  const finish = () => {
    stdout.end();
    stderr.end();
  };
  socket.on('end', finish);
  socket.on('close', finish);
  socket.on('error', (error) => {
    stdout.destroy(error);
    stderr.destroy(error);
  });
}

/** Strips the wrapper's marker line from the start of stdout and reports what it said. */
function stripMarker(source: PassThrough): { output: PassThrough; marker: Promise<string> } {
  const output = new PassThrough({ highWaterMark: 64 * 1024 });
  let head: Buffer = Buffer.alloc(0);
  let found = false;
  let settle!: (word: string) => void;
  const marker = new Promise<string>((resolve) => (settle = resolve));
  const forward = (chunk: Buffer) => {
    if (output.destroyed) return;
    if (!output.write(chunk)) {
      source.pause();
      onceEither(output, ['drain', 'close'], () => source.resume());
    }
  };
  source.on('data', (chunk: Buffer) => {
    if (found) return forward(chunk);
    head = Buffer.concat([head, chunk]);
    const newline = head.indexOf(0x0a);
    if (newline === -1 && head.length < 32) return;
    found = true;
    const line = head.subarray(0, newline === -1 ? 0 : newline).toString('latin1');
    settle(line.startsWith('\0SPX:') ? line.slice(5) : 'unknown');
    const rest = head.subarray(newline + 1);
    if (rest.length > 0) forward(rest);
  });
  source.on('end', () => {
    if (!found) settle('none');
    output.end();
  });
  source.on('error', (error) => output.destroy(error));
  return { output, marker };
}

/** Signals, from the host, every process carrying the exec's marker. False when that is not possible. */
async function killFromHost(execId: string, signal: NodeJS.Signals): Promise<boolean> {
  if (process.getuid?.() !== 0 || process.platform !== 'linux') return false;
  const marker = `SANDPORT_EXEC_ID=${execId}`;
  let killedAny = false;
  for (let round = 0; round < 20; round++) {
    let found = 0;
    for (const entry of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
      if (!environ.split('\0').includes(marker)) continue;
      found++;
      try {
        process.kill(Number(entry), signal);
        killedAny = true;
      } catch {
        // gone meanwhile
      }
    }
    if (found === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return killedAny;
}

export interface DockerExecContext {
  sandboxId: string;
  container: Docker.Container;
  isRunning: () => boolean;
  ended: (process: DockerSandboxProcess) => void;
  /** Whether the container's memory cgroup has OOM-killed a process since last asked. */
  oomKilled?: () => Promise<boolean>;
}

/** One command running in a Docker sandbox. */
export class DockerSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** @internal Resolves once the command runs; rejects with a typed error when it cannot start. */
  readonly started: Promise<void>;
  private readonly exited: Promise<ExitStatus>;
  private failure: unknown;
  private done = false;

  constructor(
    private readonly context: DockerExecContext,
    private readonly exec: Docker.Exec,
    socket: Duplex,
    private readonly execId: string,
    argv: readonly string[],
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ) {
    const rawStdout = new PassThrough({ highWaterMark: 64 * 1024 });
    const stderr = new PassThrough({ highWaterMark: 64 * 1024 });
    demux(socket, rawStdout, stderr);
    const { output, marker } = stripMarker(rawStdout);
    this.stdout = fromNodeReadable(output);
    this.stderr = fromNodeReadable(stderr);
    socket.on('error', () => undefined);
    this.stdin = Writable.toWeb(socket) as WritableStream<Uint8Array>;
    const streamEnded = new Promise<void>((resolve) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
    });
    this.started = marker.then((word) => {
      if (word === 'ok') return;
      if (word === 'cwd') throw new SandboxInvalidArgumentError({ message: `The working directory does not exist in sandbox ${context.sandboxId}`, argument: 'cwd', provider: 'docker' });
      if (word === 'command') throw new SandboxInvalidArgumentError({ message: `Command not found in sandbox ${context.sandboxId}: ${argv[0]}`, argument: 'command', provider: 'docker' });
      throw context.isRunning()
        ? mapDockerError(new Error(`the command did not start (${word})`), { operation: 'exec', sandboxId: context.sandboxId })
        : new SandboxNotFoundError({ message: `Sandbox ${context.sandboxId} is no longer running`, sandboxId: context.sandboxId, provider: 'docker' });
    });
    this.started.catch(() => undefined);
    const stopWatching = watchExecLimits({
      timeoutMs,
      signal,
      provider: 'docker',
      stop: (reason) => {
        this.failure ??= reason;
        void this.kill();
      },
    });
    this.exited = streamEnded.then(async () => {
      stopWatching();
      const exitCode = await this.exitCode();
      this.done = true;
      context.ended(this);
      // The engine reports only a number; 128 + n is the shell's convention for death by signal n.
      const signalName = signalFromExitCode(exitCode);
      if (signalName === 'SIGKILL' && (await context.oomKilled?.().catch(() => false))) return { exitCode, signal: signalName, oomKilled: true };
      return { exitCode, signal: signalName };
    });
    this.exited.catch(() => undefined);
  }

  private async exitCode(): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const info = await this.exec.inspect();
        if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
      } catch (error) {
        if (!this.context.isRunning()) break;
        throw mapDockerError(error, { operation: 'exec inspect', sandboxId: this.context.sandboxId });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(5 * (attempt + 1), 50)));
    }
    this.failure ??= new SandboxNotFoundError({ message: `Sandbox ${this.context.sandboxId} ended while the command was running`, sandboxId: this.context.sandboxId, provider: 'docker' });
    return 137;
  }

  async wait(): Promise<ExitStatus> {
    const status = await this.exited;
    if (this.failure !== undefined) throw this.failure;
    return status;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.done || !this.context.isRunning()) return;
    // When the engine runs on this host and we are root, the marked processes are signalled from
    // outside: that works even when the command exhausted the pids limit and nothing more can
    // start inside. Otherwise a second exec finds and signals them from inside.
    if (await killFromHost(this.execId, signal)) return;
    try {
      const killer = await this.context.container.exec({ Cmd: ['/bin/sh', '-c', execKiller, 'sandport-kill', this.execId, signal.replace(/^SIG/, '')], AttachStdout: true, AttachStderr: true });
      const stream = (await killer.start({ hijack: true, stdin: false })) as unknown as import('node:stream').Duplex;
      stream.resume();
      await new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
      });
    } catch (error) {
      if (this.context.isRunning()) throw mapDockerError(error, { operation: 'kill', sandboxId: this.context.sandboxId });
    }
  }

  /** @internal The sandbox ended while this command ran. */
  sandboxEnded(): void {
    this.failure ??= new SandboxNotFoundError({ message: `Sandbox ${this.context.sandboxId} ended while the command was running`, sandboxId: this.context.sandboxId, provider: 'docker' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
