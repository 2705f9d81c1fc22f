import { describe, expect, it } from 'vitest';
import { OutputPipe } from './output-pipe.js';

const KiB = 1024;

/** A source of `total` bytes in `chunk`-byte pieces that counts what has been pulled from it. */
function countingSource(total: number, chunk: number): { stream: ReadableStream<Uint8Array>; produced: () => number } {
  let produced = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (produced >= total) return controller.close();
        produced += chunk;
        controller.enqueue(new Uint8Array(chunk).fill(produced / chunk));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, produced: () => produced };
}

/** Lets every pending promise job and I/O callback run a few times over. */
async function settle(rounds = 20): Promise<void> {
  for (let index = 0; index < rounds; index++) await new Promise((resolve) => setImmediate(resolve));
}

const text = (bytes: Uint8Array | null) => (bytes === null ? null : new TextDecoder().decode(bytes));

describe('OutputPipe', () => {
  it('hands out the source in order, then null at the end', async () => {
    const pipe = new OutputPipe(new Blob(['abc', 'def']).stream());
    let offset = 0;
    let all = '';
    for (let chunk = await pipe.take(0); chunk; chunk = await pipe.take(offset)) {
      offset += chunk.byteLength;
      all += text(chunk);
    }
    expect(all).toBe('abcdef');
    expect(await pipe.take(offset)).toBeNull();
  });

  it('skips bytes before the offset a resuming reader asks for', async () => {
    const pipe = OutputPipe.of(new TextEncoder().encode('abcdef'));
    expect(text(await pipe.take(4))).toBe('ef');
    expect(await pipe.take(6)).toBeNull();
  });

  it('stops pulling from the source once its buffer is full and nobody reads', async () => {
    const chunk = 64 * KiB;
    const highWaterMark = 256 * KiB;
    const source = countingSource(64 * 1024 * KiB, chunk);
    const pipe = new OutputPipe(source.stream, { highWaterMark });
    await settle();
    // The pump reads while the buffer is under the mark, so it holds at most one chunk past it.
    expect(source.produced()).toBeGreaterThanOrEqual(highWaterMark);
    expect(source.produced()).toBeLessThanOrEqual(highWaterMark + chunk);
    expect(pipe.bufferedBytes).toBe(source.produced());
  });

  it('holds memory bounded under a slow reader and still delivers every byte', async () => {
    const chunk = 64 * KiB;
    const highWaterMark = 256 * KiB;
    const total = 8 * 1024 * KiB;
    const source = countingSource(total, chunk);
    const pipe = new OutputPipe(source.stream, { highWaterMark });
    let consumed = 0;
    let worstAhead = 0;
    for (;;) {
      await settle(5); // a slow reader: the pump gets every chance to run ahead
      worstAhead = Math.max(worstAhead, source.produced() - consumed, pipe.bufferedBytes);
      const next = await pipe.take(consumed);
      if (!next) break;
      consumed += next.byteLength;
    }
    expect(consumed).toBe(total);
    expect(worstAhead).toBeLessThanOrEqual(highWaterMark + chunk);
  });

  it('ends with what was read when the source fails', async () => {
    let pulls = 0;
    const source = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (pulls++ === 0) controller.enqueue(new TextEncoder().encode('partial'));
          else controller.error(new Error('the sandbox went away'));
        },
      },
      { highWaterMark: 0 },
    );
    const pipe = new OutputPipe(source);
    expect(text(await pipe.take(0))).toBe('partial');
    expect(await pipe.take(7)).toBeNull();
  });

  it('without a source is empty and ended', async () => {
    expect(await new OutputPipe().take(0)).toBeNull();
  });
});
