/**
 * The emulator's side of one exec: its two output pipes, its stdin written by offset (so that a
 * client retrying a write never duplicates bytes), and its exit. Wire formats differ by provider;
 * this bookkeeping does not.
 */
import { constants as osConstants } from 'node:os';
import type { SandboxProcess } from '../../../src/kit/index.js';
import { OutputPipe } from './output-pipe.js';

/** How an exec ended: an exit code, a signal number, or the sandbox went away (with why). */
export type ExitInfo = { code: number } | { signal: number } | { gone: string };

export interface ExecRecordInit {
  stdout: OutputPipe;
  stderr: OutputPipe;
  exited: Promise<ExitInfo>;
  /** Where stdin bytes go; without it stdin counts as closed from the start. */
  stdin?: WritableStream<Uint8Array>;
}

/** One exec known to the emulator, by the id the client gave or got. */
export class ExecRecord {
  readonly stdout: OutputPipe;
  readonly stderr: OutputPipe;
  /** Set once the exec ended; `exited` resolves to the same value. */
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  private readonly stdinWriter: WritableStreamDefaultWriter<Uint8Array> | undefined;
  private stdinWritten = 0;
  private stdinClosed = false;
  private stdinQueue: Promise<void> = Promise.resolve();

  constructor(init: ExecRecordInit) {
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.stdinWriter = init.stdin?.getWriter();
    this.stdinWriter?.closed.catch(() => undefined);
    if (!this.stdinWriter) this.stdinClosed = true;
    this.exited = init.exited.then((exit) => (this.exit = exit));
  }

  /** A finished exec whose output is already known (the emulator answered on the host). */
  static finished(stdout: Uint8Array, stderr: Uint8Array, code: number): ExecRecord {
    return new ExecRecord({ stdout: OutputPipe.of(stdout), stderr: OutputPipe.of(stderr), exited: Promise.resolve({ code }) });
  }

  /**
   * A command running in the sandbox. A stream the client asked to discard (`false`) is drained,
   * so that it never stalls the command.
   */
  static running(process: SandboxProcess, options: { stdout: boolean; stderr: boolean }): ExecRecord {
    const exited = process.wait().then(
      (status): ExitInfo =>
        status.signal ? { signal: osConstants.signals[status.signal as NodeJS.Signals] ?? 9 } : { code: status.exitCode },
      (error: unknown): ExitInfo => ({ gone: error instanceof Error ? error.message : String(error) }),
    );
    if (!options.stdout) void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
    if (!options.stderr) void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
    return new ExecRecord({
      stdout: options.stdout ? new OutputPipe(process.stdout) : new OutputPipe(),
      stderr: options.stderr ? new OutputPipe(process.stderr) : new OutputPipe(),
      exited,
      stdin: process.stdin,
    });
  }

  /**
   * Writes stdin bytes that start at stream offset `offset`; bytes already written (a retried
   * call) are skipped. Writes apply in call order. `eof` closes stdin; writes after it are dropped.
   * Never rejects: a command that exited without reading its input is not the writer's error.
   */
  writeStdin(offset: number, data: Uint8Array, eof: boolean): Promise<void> {
    this.stdinQueue = this.stdinQueue.then(async () => {
      const skip = Math.max(0, this.stdinWritten - offset);
      const fresh = data.subarray(Math.min(skip, data.byteLength));
      if (fresh.byteLength > 0 && !this.stdinClosed) {
        this.stdinWritten += fresh.byteLength;
        await this.stdinWriter?.write(fresh).catch(() => undefined);
      }
      if (eof && !this.stdinClosed) {
        this.stdinClosed = true;
        await this.stdinWriter?.close().catch(() => undefined);
      }
    });
    return this.stdinQueue;
  }

  /** Bytes of stdin accepted so far, and whether stdin is closed. */
  get stdinStatus(): { numBytesWritten: number; closed: boolean } {
    return { numBytesWritten: this.stdinWritten, closed: this.stdinClosed };
  }
}
