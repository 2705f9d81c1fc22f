/**
 * The log of one command the Daytona daemon ran: stdout and stderr chunks in the order they came
 * (Daytona's logs interleave them, and its followed log stream labels each with a prefix), kept
 * for the non-followed `logs` call and read by any number of followers.
 *
 * Memory stays bounded: at most `retainBytes` are kept (older chunks go once every follower has
 * passed them; with no follower the oldest go first, as the command keeps running on Daytona
 * while nobody reads), and the command is read from only while the slowest follower is less
 * than `followerLagBytes` behind, so a slow follower stalls the command in the sandbox.
 */

/** Which stream a chunk came from. */
export type LogStream = 'stdout' | 'stderr';

export interface LogEntry {
  readonly stream: LogStream;
  readonly bytes: Uint8Array;
}

export interface CommandLogOptions {
  /** Bytes kept for reads. @default 64 MiB */
  retainBytes?: number;
  /** How far the slowest follower may lag before the command is read no further. @default 4 MiB */
  followerLagBytes?: number;
}

/** A reader's place in the log. */
export interface LogCursor {
  /** Index of the next entry to read. */
  next: number;
}

export class CommandLog {
  private readonly entries: LogEntry[] = [];
  /** Index (in the whole log) of `entries[0]`. */
  private first = 0;
  private retained = 0;
  /** Bytes appended ever, and bytes up to each follower's place, to measure lag. */
  private appended = 0;
  private readonly offsets: number[] = [];
  private readonly followers = new Set<LogCursor>();
  private open = 0;
  private wakers: Array<() => void> = [];
  private pumpWakers: Array<() => void> = [];
  /** True once some bytes were dropped before anyone read them. */
  truncated = false;
  private readonly retainBytes: number;
  private readonly lagBytes: number;

  constructor(sources: Partial<Record<LogStream, ReadableStream<Uint8Array>>>, options: CommandLogOptions = {}) {
    this.retainBytes = options.retainBytes ?? 64 * 1024 * 1024;
    this.lagBytes = options.followerLagBytes ?? 4 * 1024 * 1024;
    for (const [stream, source] of Object.entries(sources) as Array<[LogStream, ReadableStream<Uint8Array>]>) {
      this.open++;
      void this.pump(stream, source.getReader());
    }
  }

  /** True once every source ended. */
  get ended(): boolean {
    return this.open === 0;
  }

  /** Everything kept, as text: `output` interleaved, and each stream on its own. */
  text(): { output: string; stdout: string; stderr: string } {
    const decode = (filter: (entry: LogEntry) => boolean) =>
      Buffer.concat(this.entries.filter(filter).map((entry) => entry.bytes)).toString('utf8');
    return {
      output: decode(() => true),
      stdout: decode((entry) => entry.stream === 'stdout'),
      stderr: decode((entry) => entry.stream === 'stderr'),
    };
  }

  /** A follower from the first kept entry. Close it with `leave`. */
  follow(): LogCursor {
    const cursor = { next: this.first };
    this.followers.add(cursor);
    return cursor;
  }

  leave(cursor: LogCursor): void {
    this.followers.delete(cursor);
    this.trim();
    this.wakePump();
  }

  /** The follower's next entry, waiting for one; null once the log ended and it read everything. */
  async read(cursor: LogCursor): Promise<LogEntry | null> {
    for (;;) {
      if (cursor.next < this.first) cursor.next = this.first;
      const index = cursor.next - this.first;
      if (index < this.entries.length) {
        cursor.next++;
        this.trim();
        this.wakePump();
        return this.entries[index]!;
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }

  private lag(): number {
    let lag = 0;
    for (const cursor of this.followers) {
      const index = cursor.next - this.first;
      const readUpTo = index <= 0 ? (this.offsets[0] ?? this.appended) : (this.offsets[index] ?? this.appended);
      lag = Math.max(lag, this.appended - readUpTo);
    }
    return lag;
  }

  private trim(): void {
    const slowest = Math.min(...[...this.followers].map((cursor) => cursor.next), Number.POSITIVE_INFINITY);
    while (this.retained > this.retainBytes && this.entries.length > 0) {
      if (this.first >= slowest) break;
      if (this.followers.size === 0) this.truncated = true;
      const dropped = this.entries.shift()!;
      this.offsets.shift();
      this.first++;
      this.retained -= dropped.bytes.byteLength;
    }
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }

  private wakePump(): void {
    const wakers = this.pumpWakers;
    this.pumpWakers = [];
    for (const wake of wakers) wake();
  }

  private async pump(stream: LogStream, reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        while (this.lag() >= this.lagBytes || (this.retained >= this.retainBytes && this.followers.size > 0 && this.cannotTrim())) {
          await new Promise<void>((resolve) => this.pumpWakers.push(resolve));
        }
        const { done, value } = await reader.read();
        if (done) break;
        if (value.byteLength === 0) continue;
        this.offsets.push(this.appended);
        this.entries.push({ stream, bytes: value });
        this.appended += value.byteLength;
        this.retained += value.byteLength;
        this.trim();
        this.wake();
      }
    } catch {
      // The sandbox went away mid-stream: what was read is all there is.
    } finally {
      this.open--;
      this.wake();
    }
  }

  private cannotTrim(): boolean {
    const slowest = Math.min(...[...this.followers].map((cursor) => cursor.next));
    return slowest <= this.first;
  }
}
