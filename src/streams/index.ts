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

/**
 * A pull stream that yields `head` first, then the rest of `reader`: for adapters that read a
 * few bytes (a start marker, a status byte) before handing the stream to the caller. Nothing is
 * read ahead (`highWaterMark` 0), so backpressure reaches the source unchanged. Cancelling it
 * cancels the reader.
 */
export function prependChunk(reader: ReadableStreamDefaultReader<Uint8Array>, head: Uint8Array): ReadableStream<Uint8Array> {
  let pending: Uint8Array | undefined = head.byteLength > 0 ? head : undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (pending) {
          const chunk = pending;
          pending = undefined;
          return controller.enqueue(chunk);
        }
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel(reason) {
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** What to do when a callback producer outruns the reader of a {@link fromCallbacks} stream. */
export type CallbackOverflow =
  /** Ask the producer to pause (`pause()` given) and resume it when the reader drains the queue. */
  | 'pause'
  /** Error the stream with `StreamOverflowError`-style `RangeError` naming the limit: data is never dropped silently. */
  | 'error';

/**
 * A byte stream fed by callbacks (an SDK's `onStdout(chunk)`), with bounded memory: chunks wait
 * in a queue of at most `maxBufferedBytes`. Past that bound the producer is paused when it can
 * be (`pause`/`resume` given), otherwise the stream errors with a `RangeError` that names the
 * bound: a reader that falls that far behind learns it, and the host never grows without limit.
 */
export function fromCallbacks(options: {
  maxBufferedBytes?: number;
  pause?: () => void;
  resume?: () => void;
  /** Called once when the reader cancels: stop the producer. */
  cancel?: (reason: unknown) => void;
}): {
  stream: ReadableStream<Uint8Array>;
  push: (chunk: Uint8Array) => void;
  end: () => void;
  error: (error: unknown) => void;
} {
  const limit = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let paused = false;
  let done = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      pull() {
        if (paused && (controller.desiredSize ?? 0) > 0) {
          paused = false;
          options.resume?.();
        }
      },
      cancel(reason) {
        done = true;
        options.cancel?.(reason);
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: limit }),
  );
  return {
    stream,
    push(chunk) {
      if (done || chunk.byteLength === 0) return;
      const room = controller.desiredSize ?? 0;
      if (room - chunk.byteLength < 0 && !options.pause) {
        done = true;
        controller.error(new RangeError(`The reader fell more than ${limit} bytes behind a producer that cannot pause`));
        options.cancel?.(undefined);
        return;
      }
      controller.enqueue(chunk);
      if ((controller.desiredSize ?? 0) <= 0 && options.pause && !paused) {
        paused = true;
        options.pause();
      }
    },
    end() {
      if (done) return;
      done = true;
      controller.close();
    },
    error(error) {
      if (done) return;
      done = true;
      controller.error(error);
    },
  };
}

/**
 * A Web `WritableStream` over a Node `Writable` with real backpressure: each write resolves once
 * the Node stream has accepted it without exceeding its buffer (Node 20's `Writable.toWeb` did
 * not hold memory bounded). Errors of the Node stream reach the writer through `mapError`, which
 * turns them into the adapter's typed errors (a closed pipe after the command exited, say).
 */
export function toWebWritable(
  writable: import('node:stream').Writable,
  options: { mapError?: (error: unknown) => unknown; discardWhen?: () => boolean } = {},
): WritableStream<Uint8Array> {
  const mapError = options.mapError ?? ((error: unknown) => error);
  // Once the reader is gone for good (the command exited), what is written goes nowhere, as into
  // a pipe nobody reads: writes and close resolve, on every adapter alike.
  const discarding = options.discardWhen ?? (() => false);
  let failure: unknown;
  writable.on('error', (error) => {
    failure ??= error;
  });
  const whenWritable = () =>
    new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        writable.off('drain', onDrain);
        writable.off('error', onError);
        writable.off('close', onClose);
      };
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onError = (error: unknown) => {
        cleanup();
        reject(mapError(error));
      };
      const onClose = () => {
        cleanup();
        reject(mapError(failure ?? Object.assign(new Error('write after end'), { code: 'EPIPE' })));
      };
      writable.on('drain', onDrain);
      writable.on('error', onError);
      writable.on('close', onClose);
    });
  const closedError = () => mapError(failure ?? Object.assign(new Error('write after end'), { code: 'EPIPE' }));
  // A write that failed errors the Web stream, and a Web stream answers `close()` on an errored
  // stream with a bare TypeError; close() rejects with the mapped failure instead.
  let writeFailure: unknown;
  const mapClose = (error: unknown) => {
    throw writeFailure ?? error;
  };
  class BridgedWritable extends WritableStream<Uint8Array> {
    override getWriter(): WritableStreamDefaultWriter<Uint8Array> {
      const writer = super.getWriter();
      const close = writer.close.bind(writer);
      writer.close = () => close().catch(mapClose);
      return writer;
    }
    override close(): Promise<void> {
      return super.close().catch(mapClose);
    }
  }
  return new BridgedWritable({
    async write(chunk) {
      try {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('stdin accepts Uint8Array chunks only');
        if (discarding()) return;
        if (failure !== undefined || writable.destroyed || writable.writableEnded) throw closedError();
        if (!writable.write(chunk)) await whenWritable();
      } catch (error) {
        if (discarding()) return;
        writeFailure ??= error;
        throw error;
      }
    },
    async close() {
      if (discarding() || writable.destroyed || writable.writableEnded) return;
      await new Promise<void>((resolve) => {
        writable.end(() => resolve());
        writable.once('error', () => resolve());
        writable.once('close', () => resolve());
      });
    },
    abort() {
      writable.destroy();
    },
  });
}

/**
 * How many bytes a command may write to an output stream its reader cancelled before it is treated
 * as a writer to a closed pipe (SIGPIPE). Bytes in flight at the cancel stay under it.
 */
export const cancelledStreamWriterLimitBytes = 1024 * 1024;

/**
 * A view of `source` whose `cancel()` does not cancel the source but reads it to its end in the
 * background, discarding the bytes. For providers whose command would block on a full output
 * buffer once nobody reads it (the output travels over an RPC stream, not a pipe that closes):
 * cancelling then means "I do not care about this output". A command that keeps writing to the
 * cancelled stream (more than `writerStopsAfterBytes` after the cancel) gets `onKeepsWriting`,
 * where the adapter does what a closed pipe would: signal it with SIGPIPE.
 */
export function discardOnCancel(
  source: ReadableStream<Uint8Array>,
  options: { onKeepsWriting?: () => void; writerStopsAfterBytes?: number } = {},
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const limit = options.writerStopsAfterBytes ?? cancelledStreamWriterLimitBytes;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel() {
        void (async () => {
          let discarded = 0;
          let told = false;
          for (;;) {
            const next = await reader.read();
            if (next.done) return;
            discarded += next.value.byteLength;
            if (!told && discarded > limit) {
              told = true;
              options.onKeepsWriting?.();
            }
          }
        })().catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * `source`, bound to `signal`: once the signal aborts, the stream errors with `signal.reason`
 * (a reader waiting on it rejects at once) and the source is cancelled, so a stream handed out by
 * a call that took a signal keeps obeying it while it is consumed.
 */
export function abortableStream(source: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  if (!signal) return source;
  const reader = source.getReader();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(signal.reason);
      void reader.cancel(signal.reason).catch(() => undefined);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  const release = () => signal.removeEventListener('abort', onAbort!);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          signal.throwIfAborted();
          const next = await Promise.race([aborted, reader.read()]);
          if (next.done) {
            release();
            controller.close();
          } else controller.enqueue(next.value);
        } catch (error) {
          release();
          controller.error(error);
        }
      },
      async cancel(reason) {
        release();
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
