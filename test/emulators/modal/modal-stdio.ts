/**
 * The entrypoint's own stdio of a V2 sandbox, as the SDK's `sb.stdout`, `sb.stderr` and
 * `sb.stdin` reach it on the task command router: `SandboxStdioReadV2` (a server stream read
 * from an offset, each message saying where its bytes start) and `SandboxStdinWriteV2` (writes
 * by offset, then EOF). Backed by the local sandbox's `stdout`, `stderr` and `stdin`.
 *
 * Modal keeps an entrypoint's output on its side, so that it can be read late, again, or from
 * another client, and only "the most recent portion" of it (the SDK warns about the bytes dropped
 * before the first one it gets). The emulator does the same with `retainedBytes` per stream, read
 * from the sandbox from the start whether or not anybody reads. One difference, chosen so that
 * the emulator's memory stays bounded and a reader loses nothing: while a client is reading, the
 * emulator takes output from the sandbox only as fast as the slowest reader (at most
 * `readerWindowBytes` ahead of it), so a slow reader stalls the entrypoint instead of losing
 * output as it may on Modal.
 *
 * `terminalExecOptions` is the PTY path of `TaskExecStart` (modal-exec.ts): the command runs on a
 * terminal of the local sandbox, sized and typed as the SDK's `PTYInfo` says.
 *
 * The V1 calls (`SandboxGetLogs`, `SandboxStdinWrite` on the control plane) are not answered:
 * the emulator makes V2 sandboxes only (its V1 create refuses), so the SDK never sends them.
 */
import * as grpc from '@grpc/grpc-js';
import { RpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import type { EmulatedSandbox, ModalState } from './modal-state.js';

/** Output kept per stream for late readers while nobody reads: the latest 32 MiB (Modal's own figure is not published). */
export const retainedBytes = 32 * 1024 * 1024;
/** How far the sandbox may run ahead of a connected reader: 4 MiB. */
export const readerWindowBytes = 4 * 1024 * 1024;

/** One output stream of the entrypoint, held by absolute offset for any number of readers. */
export class RetainedOutput {
  private readonly chunks: Uint8Array[] = [];
  /** Offset of the first byte held. */
  private base = 0;
  /** Offset just past the last byte held. */
  private end = 0;
  private ended = false;
  /** Where each connected reader is. */
  private readonly readers = new Map<symbol, number>();
  private wakeReaders: Array<() => void> = [];
  private wakePump: (() => void) | undefined;

  constructor(
    source: ReadableStream<Uint8Array> | undefined,
    private readonly limits = { retainedBytes, readerWindowBytes },
  ) {
    if (source) void this.pump(source.getReader());
    else this.ended = true;
  }

  /** Whether the entrypoint's stream has ended and everything it wrote is held (for tests). */
  get sourceEnded(): boolean {
    return this.ended;
  }

  /**
   * The bytes from `offset` on, as they come, each chunk with the offset it starts at (above
   * `offset` when those bytes were dropped). Ends once the entrypoint's stream ended and every
   * byte was handed out. `cancelled` stops it early (the client went away).
   */
  async *read(offset: number, cancelled: AbortSignal): AsyncGenerator<{ data: Uint8Array; startingOffset: number }> {
    const id = Symbol('reader');
    let position = offset;
    this.readers.set(id, position);
    const leave = () => {
      this.readers.delete(id);
      this.wakePump?.();
    };
    cancelled.addEventListener('abort', leave, { once: true });
    try {
      for (;;) {
        if (cancelled.aborted) return;
        const next = this.slice(position);
        if (next) {
          position = next.startingOffset + next.data.byteLength;
          this.readers.set(id, position);
          this.wakePump?.();
          yield next;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => this.wakeReaders.push(resolve));
      }
    } finally {
      cancelled.removeEventListener('abort', leave);
      leave();
    }
  }

  /** The first held chunk (or part of one) at or after `offset`, or undefined when there is none yet. */
  private slice(offset: number): { data: Uint8Array; startingOffset: number } | undefined {
    const from = Math.max(offset, this.base);
    let chunkStart = this.base;
    for (const chunk of this.chunks) {
      const chunkEnd = chunkStart + chunk.byteLength;
      if (from < chunkEnd) return { data: chunk.subarray(from - chunkStart), startingOffset: from };
      chunkStart = chunkEnd;
    }
    return undefined;
  }

  /** Offset of the slowest connected reader, or undefined when nobody reads. */
  private slowestReader(): number | undefined {
    let slowest: number | undefined;
    for (const position of this.readers.values()) slowest = slowest === undefined ? position : Math.min(slowest, position);
    return slowest;
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        for (;;) {
          const slowest = this.slowestReader();
          if (slowest === undefined || this.end - slowest < this.limits.readerWindowBytes) break;
          await new Promise<void>((resolve) => (this.wakePump = resolve));
        }
        const { done, value } = await reader.read();
        if (done) break;
        if (value.byteLength === 0) continue;
        this.chunks.push(value);
        this.end += value.byteLength;
        this.trim();
        this.wake();
      }
    } catch {
      // The sandbox went away mid-stream: what was read is all there is.
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  /** Drops the oldest output beyond `retainedBytes`, never bytes a connected reader has yet to take. */
  private trim(): void {
    const keepFrom = Math.min(this.end - this.limits.retainedBytes, this.slowestReader() ?? Number.POSITIVE_INFINITY);
    while (this.chunks.length > 0 && this.base + this.chunks[0]!.byteLength <= keepFrom) this.base += this.chunks.shift()!.byteLength;
  }

  private wake(): void {
    const waiting = this.wakeReaders;
    this.wakeReaders = [];
    for (const resolve of waiting) resolve();
  }
}

/** The entrypoint's stdin, written by offset so that a retried write is never written twice. */
class OffsetStdin {
  private written = 0;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly writer: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(stdin: WritableStream<Uint8Array> | undefined) {
    this.writer = stdin?.getWriter();
    this.writer?.closed.catch(() => undefined);
  }

  /** Never rejects: an entrypoint that exited without reading its input is not the writer's error. */
  write(offset: number, data: Uint8Array, eof: boolean): Promise<void> {
    this.queue = this.queue.then(async () => {
      const fresh = data.subarray(Math.min(Math.max(0, this.written - offset), data.byteLength));
      if (fresh.byteLength > 0 && !this.closed) {
        this.written += fresh.byteLength;
        await this.writer?.write(fresh).catch(() => undefined);
      }
      if (eof && !this.closed) {
        this.closed = true;
        await this.writer?.close().catch(() => undefined);
      }
    });
    return this.queue;
  }
}

interface EntrypointStdio {
  stdout: RetainedOutput;
  stderr: RetainedOutput;
  stdin: OffsetStdin;
}

const stdioBySandbox = new WeakMap<EmulatedSandbox, EntrypointStdio>();

/** Starts keeping a new sandbox's entrypoint output (call once, when it was created). */
export function attachEntrypointStdio(found: EmulatedSandbox): void {
  if (stdioBySandbox.has(found)) return;
  const { stdout, stderr, stdin } = found.local;
  stdioBySandbox.set(found, { stdout: new RetainedOutput(stdout), stderr: new RetainedOutput(stderr), stdin: new OffsetStdin(stdin) });
}

/** The stdio of the sandbox a router request names by task id; an ended sandbox's output stays readable. */
function stdioOf(state: ModalState, taskId: string): EntrypointStdio {
  const found = state.byTask.get(taskId);
  if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Task ${taskId} not found`);
  attachEntrypointStdio(found);
  return stdioBySandbox.get(found)!;
}

export function stdioHandlers(state: ModalState): Pick<RpcHandlers, 'sandboxStdioReadV2' | 'sandboxStdinWriteV2'> {
  return {
    async *sandboxStdioReadV2(request: Json, call) {
      const stdio = stdioOf(state, request.taskId);
      if (request.fileDescriptor !== 0 && request.fileDescriptor !== 1)
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `Unknown file descriptor ${request.fileDescriptor}`);
      const cancelled = new AbortController();
      (call as grpc.ServerWritableStream<Json, Json>).on('cancelled', () => cancelled.abort());
      const output = request.fileDescriptor === 0 ? stdio.stdout : stdio.stderr;
      yield* output.read(request.offset, cancelled.signal);
    },
    async sandboxStdinWriteV2(request: Json) {
      // After the entrypoint exited the write is accepted and dropped, like a write to its closed pipe.
      await stdioOf(state, request.taskId).stdin.write(request.offset, request.data, request.eof);
      return {};
    },
  };
}

/**
 * The local exec options of a `TaskExecStart` with `ptyInfo` (the SDK's `exec(..., { pty: true })`):
 * a terminal of the size it sent, and its `TERM` and `COLORTERM` unless the exec's own environment
 * sets them. Without `ptyInfo`, the environment alone.
 */
export function terminalExecOptions(
  ptyInfo: Json | null | undefined,
  env: Record<string, string>,
): { env: Record<string, string>; pty?: { rows: number; cols: number } } {
  if (!ptyInfo) return { env };
  const terminalEnv: Record<string, string> = {};
  if (ptyInfo.envTerm) terminalEnv.TERM = ptyInfo.envTerm;
  if (ptyInfo.envColorterm) terminalEnv.COLORTERM = ptyInfo.envColorterm;
  if (ptyInfo.envTermProgram) terminalEnv.TERM_PROGRAM = ptyInfo.envTermProgram;
  return { env: { ...terminalEnv, ...env }, pty: { rows: ptyInfo.winszRows || 24, cols: ptyInfo.winszCols || 80 } };
}
