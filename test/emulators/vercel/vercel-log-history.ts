/**
 * A command's log lines as Vercel keeps them: every `logs()` reader starts from the first line,
 * however many read before (the SDK's `wait()` then `stdout()` reads a finished command's logs
 * again; `runCommand({ detached, stdout })` reads them while the caller may read them too).
 *
 * Memory stays bounded: the history is a window of at most `capBytes` of log data. While it is
 * full, lines that every reader present has passed are dropped from its start (a reader arriving
 * later starts at the oldest line kept, so output beyond the window is replayed only in part);
 * with nothing to drop, it stops pulling from the command's pipes, so the command stalls in the
 * sandbox, as on a full pipe, until a reader moves on.
 */
import { TextDecoder } from 'node:util';
import type { OutputPipe } from '../shared/output-pipe.js';

/** One log line: the stream and its text. */
export interface LogEntry {
  readonly stream: 'stdout' | 'stderr';
  readonly data: string;
}

/** Bytes of log data the history keeps at most (8 MiB). */
export const defaultHistoryBytes = 8 * 1024 * 1024;

interface Reader {
  position: number;
}

export class LogHistory {
  private readonly entries: Array<LogEntry & { bytes: number }> = [];
  /** Index (over the whole log) of `entries[0]`. */
  private base = 0;
  private bytes = 0;
  private ended = false;
  private readonly readers = new Set<Reader>();
  private wake: Array<() => void> = [];
  /** Resolves once both pipes ended and every line is in the history. */
  readonly complete: Promise<void>;

  constructor(
    pipes: { stdout: OutputPipe; stderr: OutputPipe },
    private readonly capBytes = defaultHistoryBytes,
  ) {
    this.complete = Promise.all([this.pump('stdout', pipes.stdout), this.pump('stderr', pipes.stderr)]).then(() => {
      this.ended = true;
      this.notify();
    });
  }

  /** Lines from the oldest kept to the end of the command's output. Stops when `gone()` says so. */
  async *read(gone: () => boolean): AsyncGenerator<LogEntry> {
    const reader: Reader = { position: this.base };
    this.readers.add(reader);
    try {
      for (;;) {
        if (gone()) return;
        reader.position = Math.max(reader.position, this.base);
        const entry = this.entries[reader.position - this.base];
        if (entry) {
          reader.position++;
          this.notify();
          yield entry;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => this.wake.push(resolve));
      }
    } finally {
      this.readers.delete(reader);
      this.notify();
    }
  }

  /** Drops history (the session ended). */
  clear(): void {
    this.base += this.entries.length;
    this.entries.length = 0;
    this.bytes = 0;
    this.notify();
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }

  /** Waits until the window has room, dropping lines every present reader has passed. */
  private async room(): Promise<void> {
    for (;;) {
      if (this.bytes < this.capBytes) return;
      const passed = Math.min(...[...this.readers].map((reader) => reader.position), this.base + this.entries.length);
      if (this.readers.size > 0 && passed > this.base) {
        for (const dropped of this.entries.splice(0, passed - this.base)) this.bytes -= dropped.bytes;
        this.base = passed;
        continue;
      }
      await new Promise<void>((resolve) => this.wake.push(resolve));
    }
  }

  private async pump(stream: 'stdout' | 'stderr', pipe: OutputPipe): Promise<void> {
    const decoder = new TextDecoder();
    let offset = 0;
    for (;;) {
      await this.room();
      const chunk = await pipe.take(offset);
      const data = chunk === null ? decoder.decode() : decoder.decode(chunk, { stream: true });
      if (data) {
        const bytes = chunk?.byteLength ?? data.length;
        this.entries.push({ stream, data, bytes });
        this.bytes += bytes;
        this.notify();
      }
      if (chunk === null) return;
      offset += chunk.byteLength;
    }
  }
}
