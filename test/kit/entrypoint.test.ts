import { describe, expect, it } from 'vitest';
import { closedReadable, discardingWritable, entrypointOutput, readBytes } from '../../src/kit/index.js';

/** A source of `count` chunks of `size` bytes, chunk i filled with the byte i; counts what was pulled. */
function source(count: number, size: number) {
  const state = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled >= count) return controller.close();
      state.pulled += 1;
      controller.enqueue(new Uint8Array(size).fill(state.pulled));
    },
  });
  return { stream, state };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('entrypointOutput', () => {
  it('drains an unread entrypoint, keeps the latest limitBytes and reports what it dropped at the first read', async () => {
    const { stream, state } = source(5, 100);
    let dropped: number | undefined;
    const output = entrypointOutput(stream, { limitBytes: 250, onDropped: (bytes) => (dropped = bytes) });
    await settle();
    expect(state.pulled).toBe(5); // the entrypoint never stalled
    const bytes = await readBytes(output);
    expect(bytes.byteLength).toBe(250);
    expect(dropped).toBe(250);
    // The newest output survives: half of chunk 3, then chunks 4 and 5.
    expect([bytes[0], bytes[50], bytes[150], bytes[249]]).toEqual([3, 4, 5, 5]);
  });

  it('is pull-based once read: it stops reading the entrypoint when the reader stops', async () => {
    const { stream, state } = source(1000, 10);
    const output = entrypointOutput(stream, { limitBytes: 1_000_000 });
    const reader = output.getReader();
    await reader.read(); // the first read ends the read-ahead
    const pulledAfterFirstRead = state.pulled;
    await settle();
    expect(state.pulled).toBeLessThanOrEqual(pulledAfterFirstRead + 2);
    await reader.cancel();
  });

  it('a first read gets what was kept at once, even while the entrypoint is quiet, and then what it writes later', async () => {
    let later!: ReadableStreamDefaultController<Uint8Array>;
    const quiet = new ReadableStream<Uint8Array>({
      start(controller) {
        later = controller;
        controller.enqueue(new Uint8Array([1]));
      },
    });
    const reader = entrypointOutput(quiet).getReader();
    await settle(); // the read-ahead took the first chunk and now waits for more
    expect((await reader.read()).value).toEqual(new Uint8Array([1]));
    later.enqueue(new Uint8Array([2]));
    expect((await reader.read()).value).toEqual(new Uint8Array([2]));
    later.close();
    expect((await reader.read()).done).toBe(true);
  });

  it('reports nothing when nothing was dropped, and passes the end and errors through', async () => {
    let dropped = 0;
    const small = entrypointOutput(source(2, 10).stream, { onDropped: (bytes) => (dropped = bytes) });
    expect((await readBytes(small)).byteLength).toBe(20);
    expect(dropped).toBe(0);
    const failing = entrypointOutput(new ReadableStream<Uint8Array>({ pull: (controller) => controller.error(new Error('pipe broke')) }));
    await expect(readBytes(failing)).rejects.toThrow('pipe broke');
  });

  it('cancelling the output cancels the entrypoint stream', async () => {
    let cancelled: unknown;
    const output = entrypointOutput(new ReadableStream<Uint8Array>({ cancel: (reason) => void (cancelled = reason) }));
    await output.cancel('done');
    expect(cancelled).toBe('done');
  });

  it('a sandbox without a command has a closed stdout and a stdin that takes writes', async () => {
    expect((await readBytes(closedReadable())).byteLength).toBe(0);
    const writer = discardingWritable().getWriter();
    await writer.write(new Uint8Array([1]));
    await writer.close();
  });
});
