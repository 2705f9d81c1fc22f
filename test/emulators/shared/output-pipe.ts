/**
 * One output stream of an exec (stdout or stderr) as the emulator holds it between the sandbox
 * and a client that reads by offset (Modal's stdio reads, E2B's and Daytona's log streams, a
 * Kubernetes attach). The pipe pulls from the sandbox's stream only while its buffer has room, so
 * an unread command stalls in the sandbox, as it would on the real service, and the emulator's
 * memory stays bounded whatever the command prints.
 */

/** Default buffer bound, in bytes. A chunk is never split to honour it, so the bound is soft by one chunk. */
export const defaultPipeHighWaterMark = 4 * 1024 * 1024;

export class OutputPipe {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte. */
  private base = 0;
  private ended = false;
  private wakeReader: (() => void) | undefined;
  private wakePump: (() => void) | undefined;
  private readonly highWaterMark: number;

  /**
   * @param source the sandbox's stream; without one the pipe is empty and ended.
   * @param options.highWaterMark buffer bound in bytes. @default 4 MiB
   */
  constructor(source?: ReadableStream<Uint8Array>, options: { highWaterMark?: number } = {}) {
    this.highWaterMark = options.highWaterMark ?? defaultPipeHighWaterMark;
    if (source) void this.pump(source.getReader());
    else this.ended = true;
  }

  /** An ended pipe holding `bytes` (output the emulator computed itself). */
  static of(bytes: Uint8Array): OutputPipe {
    const pipe = new OutputPipe();
    if (bytes.byteLength > 0) pipe.push(bytes);
    return pipe;
  }

  /** Bytes held now, for tests and diagnostics. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * The next chunk at or after stream offset `offset`, or null at the end. Bytes before `offset`
   * are dropped for good (a reader resuming at an offset has them already), and so is the returned
   * chunk: a retried read at the same offset after a taken chunk sees the bytes after it.
   */
  async take(offset: number): Promise<Uint8Array | null> {
    for (;;) {
      while (offset > this.base && this.chunks.length > 0) {
        const head = this.chunks[0]!;
        this.shift(Math.min(head.byteLength, offset - this.base));
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

  /**
   * Drops what is buffered (the reader went away for good). The source is read no further once the
   * buffer fills again, so the command stalls on its pipe as it would with nobody reading.
   */
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
    if (this.buffered < this.highWaterMark) this.wakePump?.();
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        while (this.buffered >= this.highWaterMark) await new Promise<void>((resolve) => (this.wakePump = resolve));
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
