import { describe, expect, it } from 'vitest';
import { CommandLog } from './daytona-command-log.js';

const KiB = 1024;

/** A source of `total` bytes in `chunk`-byte pieces that counts what has been pulled from it. */
function countingSource(total: number, chunk: number): { stream: ReadableStream<Uint8Array>; produced: () => number } {
  let produced = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (produced >= total) return controller.close();
        produced += chunk;
        controller.enqueue(new Uint8Array(chunk).fill(1 + ((produced / chunk) % 200)));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, produced: () => produced };
}

async function settle(rounds = 20): Promise<void> {
  for (let index = 0; index < rounds; index++) await new Promise((resolve) => setImmediate(resolve));
}

function streamOf(...parts: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
      controller.close();
    },
  });
}

describe('CommandLog', () => {
  it('keeps stdout and stderr apart and together, and a follower reads every chunk with its stream', async () => {
    const log = new CommandLog({ stdout: streamOf('a', 'b'), stderr: streamOf('E') });
    const cursor = log.follow();
    const seen: string[] = [];
    for (let entry = await log.read(cursor); entry; entry = await log.read(cursor)) {
      seen.push(`${entry.stream}:${new TextDecoder().decode(entry.bytes)}`);
    }
    log.leave(cursor);
    expect(seen.sort()).toEqual(['stderr:E', 'stdout:a', 'stdout:b']);
    expect(log.ended).toBe(true);
    const text = log.text();
    expect([text.stdout, text.stderr]).toEqual(['ab', 'E']);
    expect(text.output.length).toBe(3);
  });

  it('a slow follower stalls the source once it lags the bound, and frees it as it reads', async () => {
    const source = countingSource(1024 * KiB, 16 * KiB);
    const log = new CommandLog({ stdout: source.stream }, { followerLagBytes: 64 * KiB, retainBytes: 128 * KiB });
    const cursor = log.follow();
    await settle();
    expect(source.produced()).toBeLessThanOrEqual(64 * KiB + 16 * KiB);
    let read = 0;
    for (let entry = await log.read(cursor); entry; entry = await log.read(cursor)) read += entry.bytes.byteLength;
    expect(read).toBe(1024 * KiB);
  });

  it('without followers it keeps running and drops the oldest bytes past the retained bound', async () => {
    const source = countingSource(512 * KiB, 16 * KiB);
    const log = new CommandLog({ stdout: source.stream }, { retainBytes: 64 * KiB });
    for (let attempt = 0; attempt < 200 && !log.ended; attempt++) await settle(1);
    expect(source.produced()).toBe(512 * KiB);
    expect(log.truncated).toBe(true);
    expect(log.text().stdout.length).toBeLessThanOrEqual(64 * KiB);
  });
});
