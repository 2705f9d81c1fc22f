/** The emulator's retained entrypoint output (modal-stdio.ts), with tiny limits. No sandbox. */
import { describe, expect, it } from 'vitest';
import { RetainedOutput } from './modal/modal-stdio.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (chunks: Array<{ data: Uint8Array }>) => chunks.map((chunk) => new TextDecoder().decode(chunk.data)).join('');

/** A source the test feeds by hand. */
function source() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) }, { highWaterMark: 0 });
  return { stream, push: (value: string) => controller.enqueue(bytes(value)), end: () => controller.close() };
}

async function readAll(output: RetainedOutput, offset: number) {
  const chunks: Array<{ data: Uint8Array; startingOffset: number }> = [];
  for await (const chunk of output.read(offset, new AbortController().signal)) chunks.push(chunk);
  return chunks;
}

describe('RetainedOutput', () => {
  it('keeps everything under the limit for any number of readers, from any offset', async () => {
    const input = source();
    const output = new RetainedOutput(input.stream, { retainedBytes: 100, readerWindowBytes: 50 });
    input.push('hello ');
    input.push('world');
    input.end();
    expect(text(await readAll(output, 0))).toBe('hello world');
    expect(text(await readAll(output, 0))).toBe('hello world');
    const late = await readAll(output, 8);
    expect(text(late)).toBe('rld');
    expect(late[0]!.startingOffset).toBe(8);
  });

  it('with nobody reading, drops the oldest output beyond the limit and says where the rest starts', async () => {
    const input = source();
    const output = new RetainedOutput(input.stream, { retainedBytes: 4, readerWindowBytes: 2 });
    for (const chunk of ['aa', 'bb', 'cc']) input.push(chunk);
    input.end();
    // Nobody reads yet: the emulator takes it all from the sandbox, keeping the latest 4 bytes.
    while (!output.sourceEnded) await new Promise((resolve) => setImmediate(resolve));
    const chunks = await readAll(output, 0);
    expect(text(chunks)).toBe('bbcc');
    expect(chunks[0]!.startingOffset).toBe(2);
  });

  it('a connected reader holds the sandbox back instead of losing output', async () => {
    const input = source();
    const output = new RetainedOutput(input.stream, { retainedBytes: 4, readerWindowBytes: 4 });
    const cancelled = new AbortController();
    const reader = output.read(0, cancelled.signal);
    input.push('aa');
    expect(text([(await reader.next()).value!])).toBe('aa');
    // 8 bytes in all, twice what is retained: a reader that keeps up loses none of them.
    input.push('bb');
    input.push('cc');
    input.push('dd');
    input.end();
    const seen: string[] = [];
    for (;;) {
      const next = await reader.next();
      if (next.done) break;
      seen.push(new TextDecoder().decode(next.value.data));
    }
    expect(seen.join('')).toBe('bbccdd');
    cancelled.abort();
  });
});
