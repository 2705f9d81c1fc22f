/**
 * One command in a Daytona sandbox: a session command started asynchronously, its output read
 * from the toolbox's followed log stream, its exit from the command's status.
 *
 * The log stream is read on a WebSocket of the adapter's own (on `ws`, which the SDK depends on),
 * at the URL and with the headers the SDK's `getSessionCommandLogs` uses, rather than through
 * that method: the SDK decodes output as UTF-8 (bytes that are not text would arrive as U+FFFD)
 * and cannot pause its socket. Here the frames stay bytes, and a reader that falls behind pauses
 * the socket (TCP backpressure reaches the toolbox) instead of growing this process.
 */
import type WebSocket from 'ws';
import {
  SandboxNotFoundError,
  fromCallbacks,
  loadOptionalPeer,
  signalFromExitCode,
  type ExitStatus,
  type ProcessOutcome,
  type SandboxError,
  type SandboxProcess,
} from '../../src/kit/index.js';

/** Daytona's log stream prefixes: three 0x01 bytes before stdout, three 0x02 before stderr. */
export const daytonaStdoutPrefix = new Uint8Array([1, 1, 1]);
export const daytonaStderrPrefix = new Uint8Array([2, 2, 2]);

/** One piece of demultiplexed output. */
export interface DaytonaLogPiece {
  stream: 'stdout' | 'stderr';
  data: Uint8Array;
}

/**
 * Splits Daytona's prefixed log stream into stdout and stderr, bytes kept as they are. Output
 * before any prefix is stdout. A prefix may be cut between two frames: up to two trailing bytes
 * that could begin one are held until the next frame (or `end`).
 */
export class DaytonaLogDemux {
  #current: 'stdout' | 'stderr' = 'stdout';
  #held = new Uint8Array(0);

  push(frame: Uint8Array): DaytonaLogPiece[] {
    const bytes = this.#held.length === 0 ? frame : concat(this.#held, frame);
    this.#held = new Uint8Array(0);
    const pieces: DaytonaLogPiece[] = [];
    let start = 0;
    let index = 0;
    while (index < bytes.length) {
      const byte = bytes[index]!;
      if (byte !== 1 && byte !== 2) {
        index++;
        continue;
      }
      const left = bytes.length - index;
      if (left < 3) {
        // Possibly a prefix cut by the frame's end: hold it when every byte so far matches.
        if (bytes.subarray(index).every((value) => value === byte)) {
          this.#emit(pieces, bytes.subarray(start, index));
          this.#held = bytes.slice(index);
          return pieces;
        }
        index++;
        continue;
      }
      if (bytes[index + 1] === byte && bytes[index + 2] === byte) {
        this.#emit(pieces, bytes.subarray(start, index));
        this.#current = byte === 1 ? 'stdout' : 'stderr';
        index += 3;
        start = index;
        continue;
      }
      index++;
    }
    this.#emit(pieces, bytes.subarray(start));
    return pieces;
  }

  /** The stream ended: held bytes were output after all. */
  end(): DaytonaLogPiece[] {
    const pieces: DaytonaLogPiece[] = [];
    this.#emit(pieces, this.#held);
    this.#held = new Uint8Array(0);
    return pieces;
  }

  #emit(pieces: DaytonaLogPiece[], data: Uint8Array): void {
    if (data.length > 0) pieces.push({ stream: this.#current, data: data.slice() });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Bytes of output a stream holds for a reader that has not taken them, before the log socket is paused. */
export const daytonaOutputBufferBytes = 1024 * 1024;
/** Bytes a command may write to an output whose reader cancelled before it is treated as a writer to a closed pipe. */
const cancelledWriterLimitBytes = 1024 * 1024;

let wsModule: Promise<typeof import('ws')> | undefined;

/** Loads `ws` (a dependency of `@daytonaio/sdk`, so present wherever the SDK is). */
export function loadDaytonaWs(): Promise<typeof import('ws')> {
  wsModule ??= loadOptionalPeer<typeof import('ws')>('ws', {
    provider: 'daytona',
    installLine: 'npm install ws',
    load: () => import('ws'),
  }).catch((error: unknown) => {
    wsModule = undefined;
    throw error;
  });
  return wsModule;
}

/** Where and how to reach the toolbox, as the SDK reaches it. */
export interface DaytonaToolboxEndpoint {
  /** The toolbox base URL (`<toolboxProxyUrl>/<sandboxId>`). */
  basePath: string;
  headers: Record<string, string>;
}

/** The URL of a session command's followed logs (pure). */
export function daytonaLogsUrl(basePath: string, sessionId: string, commandId: string): string {
  return `${basePath.replace(/^http/, 'ws')}/process/session/${encodeURIComponent(sessionId)}/command/${encodeURIComponent(commandId)}/logs?follow=true`;
}

/**
 * The log stream of one session command as two byte streams. Resolves once the socket is open;
 * the streams end when the toolbox closes it (the command has exited), and error when it fails.
 */
export async function openDaytonaLogs(
  endpoint: DaytonaToolboxEndpoint,
  sessionId: string,
  commandId: string,
  onClosedReader: () => void,
): Promise<{
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  ended: Promise<void>;
  close: () => void;
  release: () => void;
}> {
  const { WebSocket: Socket } = await loadDaytonaWs();
  const socket: WebSocket = new Socket(daytonaLogsUrl(endpoint.basePath, sessionId, commandId), { headers: endpoint.headers });
  const paused = new Set<'stdout' | 'stderr'>();
  const cancelled = new Set<'stdout' | 'stderr'>();
  let discarded = 0;
  let told = false;
  // Released (the command was killed): nothing holds the socket back any more, so its end arrives.
  let released = false;
  const bridge = (name: 'stdout' | 'stderr') =>
    fromCallbacks({
      maxBufferedBytes: daytonaOutputBufferBytes,
      pause: () => {
        if (released) return;
        paused.add(name);
        socket.pause();
      },
      resume: () => {
        paused.delete(name);
        if (paused.size === 0) socket.resume();
      },
      cancel: () => {
        // A reader that cancelled takes nothing more: its queue must not hold the other back.
        cancelled.add(name);
        paused.delete(name);
        if (paused.size === 0) socket.resume();
      },
    });
  const outputs = { stdout: bridge('stdout'), stderr: bridge('stderr') };
  const demux = new DaytonaLogDemux();
  const deliver = (pieces: DaytonaLogPiece[]) => {
    for (const piece of pieces) {
      if (!cancelled.has(piece.stream)) {
        outputs[piece.stream].push(piece.data);
        continue;
      }
      // Writing on past a reader that cancelled: after 1 MiB, what a closed pipe would do (SIGPIPE).
      discarded += piece.data.byteLength;
      if (discarded > cancelledWriterLimitBytes && !told) {
        told = true;
        onClosedReader();
      }
    }
  };
  let settle!: { resolve: () => void; reject: (error: unknown) => void };
  const ended = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ended.catch(() => undefined);
  socket.on('message', (data: WebSocket.RawData) => {
    const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    deliver(demux.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
  });
  socket.on('error', (error) => {
    outputs.stdout.error(error);
    outputs.stderr.error(error);
    settle.reject(error);
  });
  socket.on('close', () => {
    deliver(demux.end());
    outputs.stdout.end();
    outputs.stderr.end();
    settle.resolve();
  });
  // The handlers are on before the open: frames that come with the upgrade's answer are emitted at once.
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('unexpected-response', (_request, response) => {
      reject(
        // Named as the SDK's errors are, so that mapDaytonaError reads its status.
        Object.assign(new Error(`The Daytona toolbox refused the log stream (HTTP ${response.statusCode})`), {
          name: 'DaytonaError',
          statusCode: response.statusCode,
        }),
      );
      response.resume();
    });
    socket.once('error', reject);
  });
  return {
    stdout: outputs.stdout.stream,
    stderr: outputs.stderr.stream,
    ended,
    close: () => socket.terminate(),
    release: () => {
      released = true;
      paused.clear();
      socket.resume();
    },
  };
}

/** What `DaytonaSandboxProcess` needs of the sandbox. */
export interface DaytonaProcessInit {
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  outcome: ProcessOutcome;
  mapError: (error: unknown, operation: string) => SandboxError;
  /** Sends stdin bytes; resolves once the toolbox took them. */
  send: (chunk: Uint8Array) => Promise<void>;
  /** End of input. */
  close: () => Promise<void>;
  /** The command was started without stdin (a `run` without input): writes are discarded. */
  stdinNull: boolean;
  /** Settles with the command's exit code (Daytona's status), or rejects when it cannot be known. */
  exit: Promise<number>;
}

/** One command in a Daytona sandbox, its outcome kept by the kit. */
export class DaytonaSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Set for a command on a terminal (`exec` with `pty`). */
  resize?: SandboxProcess['resize'];
  readonly #outcome: ProcessOutcome;

  constructor(init: DaytonaProcessInit) {
    const { outcome, mapError } = init;
    this.#outcome = outcome;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    // After the command exited nothing can read its input: writes are discarded and close() resolves.
    let chain: Promise<void> = Promise.resolve();
    const guarded = (operation: () => Promise<void>) => {
      const next = chain.then(async () => {
        if (outcome.done || init.stdinNull) return;
        try {
          await operation();
        } catch (error) {
          if (outcome.done) return;
          const mapped = mapError(error, 'stdin');
          // The toolbox forgets a command once it exits: "not found"/"gone" is the exit racing the write.
          if (SandboxNotFoundError.isInstance(mapped)) return;
          throw mapped;
        }
      });
      chain = next.catch(() => undefined);
      return next;
    };
    this.stdin = new WritableStream<Uint8Array>({
      write: (chunk) => guarded(() => init.send(chunk)),
      close: () => guarded(() => init.close()),
      abort: () => void guarded(() => init.close()).catch(() => undefined),
    });
    void init.exit.then(
      (code) => {
        const exit: ExitStatus = { exitCode: code, signal: signalFromExitCode(code) };
        outcome.exited(exit);
      },
      (error: unknown) => {
        outcome.fail(mapError(error, 'exec'));
        outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
      },
    );
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: Parameters<SandboxProcess['kill']>[0]): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
