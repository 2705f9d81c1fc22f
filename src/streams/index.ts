/**
 * Helpers over the Web streams the contract uses. Bytes cross the contract; decoding is here.
 */
import { Readable } from 'node:stream';

/** Reads a whole stream into one byte array. Rejects when the stream errors. */
export async function readBytes(stream: ReadableStream<Uint8Array>, options: { maxBytes?: number } = {}): Promise<Uint8Array> {
  const { chunks, total } = await collect(stream, options.maxBytes ?? Number.POSITIVE_INFINITY);
  return concatBytes(chunks, total);
}

/** Reads a whole stream as UTF-8 text. */
export async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new TextDecoder().decode(await readBytes(stream));
}

/** Yields the stream's text line by line, without the line terminator (`\n` or `\r\n`). */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      yield stripCarriageReturn(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  }
  pending += decoder.decode();
  if (pending.length > 0) yield stripCarriageReturn(pending);
}

/** A Node `Readable` reading from a Web stream (for `pipe`, `pipeline`, Node APIs). */
export function toNodeReadable(stream: ReadableStream<Uint8Array>): Readable {
  return Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>);
}

/**
 * A pull-based Web stream over an async iterable: the iterable is advanced only when the
 * consumer asks for more, so a slow reader slows the producer instead of growing a buffer.
 * Cancelling the stream calls the iterator's `return()`.
 */
export function fromAsyncIterable<T>(iterable: AsyncIterable<T>): ReadableStream<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  return new ReadableStream<T>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel(reason) {
        await iterator.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * A byte stream over a Node `Readable` with real backpressure: it reads from the Node stream only
 * while the Web stream's queue has room (Node's own `Readable.toWeb` buffered without bound
 * before Node 22, which defeats a slow reader). `cancel` destroys the source.
 */
export function fromNodeReadable(readable: Readable, options: { highWaterMarkBytes?: number } = {}): ReadableStream<Uint8Array> {
  let finished = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const signal = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  readable.on('readable', signal);
  readable.on('end', () => {
    finished = true;
    signal();
  });
  readable.on('error', (error) => {
    failure = error;
    signal();
  });
  readable.on('close', () => {
    finished = true;
    signal();
  });
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          const chunk = readable.read() as Buffer | null;
          if (chunk !== null) {
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            return;
          }
          if (failure !== undefined) return controller.error(failure);
          if (finished || readable.readableEnded) return controller.close();
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      },
      cancel() {
        readable.destroy();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: options.highWaterMarkBytes ?? 64 * 1024 }),
  );
}

/** Concatenates byte arrays into one. */
export function concatBytes(chunks: readonly Uint8Array[], total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0)): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** Collects up to `maxBytes`; keeps draining past it so the producer never stalls on us. */
export async function collect(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<{ chunks: Uint8Array[]; total: number; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let truncated = false;
  for await (const chunk of stream) {
    if (total + chunk.byteLength <= maxBytes) {
      chunks.push(chunk);
      total += chunk.byteLength;
    } else {
      if (total < maxBytes) {
        chunks.push(chunk.subarray(0, maxBytes - total));
        total = maxBytes;
      }
      truncated = true;
    }
  }
  return { chunks, total, truncated };
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
