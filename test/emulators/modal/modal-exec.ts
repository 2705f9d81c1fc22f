/**
 * The emulator's side of one exec: bounded output pipes that the SDK reads by offset, stdin
 * written by offset, and the exit status. The pipes pull from the local sandbox's streams only
 * while their buffer has room, so an unread command stalls in the sandbox, as it would on Modal,
 * and the emulator's memory stays bounded.
 */
import { constants as osConstants } from 'node:os';
import type { SandboxProcess } from '../../../src/kit/index.js';

const highWaterMark = 4 * 1024 * 1024;

export class OutputPipe {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte. */
  private base = 0;
  private ended = false;
  private wakeReader: (() => void) | undefined;
  private wakePump: (() => void) | undefined;

  constructor(source?: ReadableStream<Uint8Array>) {
    if (source) void this.pump(source.getReader());
    else this.ended = true;
  }

  static of(bytes: Uint8Array): OutputPipe {
    const pipe = new OutputPipe();
    if (bytes.byteLength > 0) pipe.push(bytes);
    return pipe;
  }

  /** The next chunk at or after `offset`, or null at the end. Bytes before `offset` are dropped. */
  async take(offset: number): Promise<Uint8Array | null> {
    for (;;) {
      while (offset > this.base && this.chunks.length > 0) {
        const head = this.chunks[0]!;
        const skip = Math.min(head.byteLength, offset - this.base);
        this.shift(skip);
      }
      if (this.chunks.length > 0) {
        const head = this.chunks[0]!;
        this.shift(head.byteLength);
        return head;
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }

  /** Stops reading the source (the reader went away for good). */
  discard(): void {
    this.chunks.length = 0;
    this.buffered = 0;
  }

  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    this.wakeReader?.();
  }

  private shift(bytes: number): void {
    const head = this.chunks[0]!;
    if (bytes >= head.byteLength) this.chunks.shift();
    else this.chunks[0] = head.subarray(bytes);
    this.buffered -= bytes;
    this.base += bytes;
    if (this.buffered < highWaterMark) this.wakePump?.();
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        while (this.buffered >= highWaterMark) await new Promise<void>((resolve) => (this.wakePump = resolve));
        const { done, value } = await reader.read();
        if (done) break;
        if (value.byteLength > 0) this.push(value);
      }
    } catch {
      // The sandbox went away mid-stream: what was read is all there is.
    } finally {
      this.ended = true;
      this.wakeReader?.();
    }
  }
}

export type ExitInfo = { code: number } | { signal: number } | { gone: string };

/** One exec known to the router, by exec id. */
export class ExecRecord {
  readonly stdout: OutputPipe;
  readonly stderr: OutputPipe;
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  private stdinWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
  private stdinWritten = 0;
  private stdinClosed = false;
  private stdinQueue: Promise<void> = Promise.resolve();

  constructor(init: { stdout: OutputPipe; stderr: OutputPipe; exited: Promise<ExitInfo>; stdin?: WritableStream<Uint8Array> }) {
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.stdinWriter = init.stdin?.getWriter();
    this.stdinWriter?.closed.catch(() => undefined);
    if (!this.stdinWriter) this.stdinClosed = true;
    this.exited = init.exited.then((exit) => (this.exit = exit));
  }

  /** A finished exec whose output is already known (the file tools answered on the host). */
  static finished(stdout: Uint8Array, stderr: Uint8Array, code: number): ExecRecord {
    return new ExecRecord({ stdout: OutputPipe.of(stdout), stderr: OutputPipe.of(stderr), exited: Promise.resolve({ code }) });
  }

  /** A command running in the local sandbox. */
  static running(process: SandboxProcess, options: { stdout: boolean; stderr: boolean }): ExecRecord {
    const exited = process.wait().then(
      (status): ExitInfo => (status.signal ? { signal: osConstants.signals[status.signal as NodeJS.Signals] ?? 9 } : { code: status.exitCode }),
      (error: unknown): ExitInfo => ({ gone: error instanceof Error ? error.message : String(error) }),
    );
    // A stream configured as /dev/null is drained so it never stalls the command.
    if (!options.stdout) void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
    if (!options.stderr) void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
    return new ExecRecord({
      stdout: options.stdout ? new OutputPipe(process.stdout) : new OutputPipe(),
      stderr: options.stderr ? new OutputPipe(process.stderr) : new OutputPipe(),
      exited,
      stdin: process.stdin,
    });
  }

  /** Writes stdin bytes starting at `offset`; bytes already written (a retried call) are skipped. */
  writeStdin(offset: number, data: Uint8Array, eof: boolean): Promise<void> {
    this.stdinQueue = this.stdinQueue.then(async () => {
      const skip = Math.max(0, this.stdinWritten - offset);
      const fresh = data.subarray(Math.min(skip, data.byteLength));
      if (fresh.byteLength > 0 && !this.stdinClosed) {
        this.stdinWritten += fresh.byteLength;
        // A command that exited without reading its input is not the writer's error.
        await this.stdinWriter?.write(fresh).catch(() => undefined);
      }
      if (eof && !this.stdinClosed) {
        this.stdinClosed = true;
        await this.stdinWriter?.close().catch(() => undefined);
      }
    });
    return this.stdinQueue;
  }

  get stdinStatus(): { numBytesWritten: number; closed: boolean } {
    return { numBytesWritten: this.stdinWritten, closed: this.stdinClosed };
  }
}
