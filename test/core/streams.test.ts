import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { collect, fromAsyncIterable, fromNodeReadable, lines, readBytes, readText, toNodeReadable } from '../../src/kit/index.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const streamOf = (...chunks: string[]) =>
  fromAsyncIterable(
    (async function* () {
      for (const chunk of chunks) yield bytes(chunk);
    })(),
  );

describe('stream helpers', () => {
  it('readText and readBytes join chunks, multi-byte characters split across chunks included', async () => {
    const snowman = bytes('☃');
    const split = fromAsyncIterable(
      (async function* () {
        yield snowman.subarray(0, 1);
        yield snowman.subarray(1);
      })(),
    );
    expect(await readText(split)).toBe('☃');
    expect(Array.from(await readBytes(streamOf('ab', 'c')))).toEqual([97, 98, 99]);
  });

  it('lines splits on \\n and \\r\\n and keeps a last unterminated line', async () => {
    const out: string[] = [];
    for await (const line of lines(streamOf('one\r\ntw', 'o\nthree'))) out.push(line);
    expect(out).toEqual(['one', 'two', 'three']);
  });

  it('collect truncates past maxBytes but drains the rest', async () => {
    const result = await collect(streamOf('12345', '67890'), 7);
    expect(result.total).toBe(7);
    expect(result.truncated).toBe(true);
  });

  it('fromAsyncIterable pulls lazily and cancel reaches the iterator', async () => {
    let produced = 0;
    let returned = false;
    const iterable = {
      [Symbol.asyncIterator]() {
        return {
          async next(): Promise<IteratorResult<number>> {
            produced++;
            return { done: false, value: produced };
          },
          async return(): Promise<IteratorResult<number>> {
            returned = true;
            return { done: true, value: undefined };
          },
        };
      },
    };
    const stream = fromAsyncIterable<number>(iterable);
    const reader = stream.getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(produced).toBeLessThanOrEqual(2);
    await reader.cancel();
    expect(returned).toBe(true);
  });

  it('fromNodeReadable applies backpressure: an unread stream stops pulling from its source', async () => {
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024);
    const endless = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        produced += chunk.length;
        this.push(chunk);
      },
    });
    const web = fromNodeReadable(endless, { highWaterMarkBytes: 64 * 1024 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Nobody reads: only the queues (Node's and the web stream's) may have filled.
    expect(produced).toBeLessThanOrEqual(4 * chunk.length);
    const reader = web.getReader();
    for (let index = 0; index < 10; index++) await reader.read();
    expect(produced).toBeGreaterThanOrEqual(10 * chunk.length);
    await reader.cancel();
    expect(endless.destroyed).toBe(true);
  });

  it('fromNodeReadable errors when the source errors, and toNodeReadable round-trips', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('boom'));
      },
    });
    await expect(readBytes(fromNodeReadable(failing))).rejects.toThrow('boom');
    const back = toNodeReadable(streamOf('x', 'y'));
    let text = '';
    for await (const piece of back) text += Buffer.from(piece).toString();
    expect(text).toBe('xy');
  });
});
