/**
 * The kit's PumpedOutput: the pump waits while the reader is behind, a cancelled reader is a
 * closed pipe (the rest dropped, the writer told once), and release, end and error let go of the pump.
 */
import { describe, expect, it } from 'vitest';
import { PumpedOutput } from '../../src/kit/index.js';

const KiB = 1024;

describe('PumpedOutput', () => {
  it('holds the pump once the reader is a buffer behind, and lets it go as the reader reads', async () => {
    const output = new PumpedOutput({ maxBufferedBytes: 64 * KiB });
    let pushed = 0;
    let waiting: Promise<void> | undefined;
    while (!waiting) {
      waiting = output.push(new Uint8Array(16 * KiB));
      pushed += 16 * KiB;
      if (pushed > 1024 * KiB) throw new Error('push never waited');
    }
    expect(pushed).toBeLessThanOrEqual(80 * KiB);
    let resumed = false;
    void waiting.then(() => (resumed = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(resumed).toBe(false);
    const reader = output.stream.getReader();
    let read = 0;
    while (!resumed) {
      const next = await reader.read();
      read += next.value?.byteLength ?? 0;
    }
    expect(read).toBeGreaterThan(0);
    output.end();
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      read += next.value.byteLength;
    }
    expect(read).toBe(pushed);
  });

  it('drops what comes after the reader cancelled, and says once that the writer keeps writing past 1 MiB', async () => {
    let told = 0;
    const output = new PumpedOutput({ onKeepsWriting: () => told++ });
    await output.stream.cancel();
    for (let index = 0; index < 40; index++) expect(output.push(new Uint8Array(64 * KiB))).toBeUndefined();
    expect(told).toBe(1);
  });

  it('release lets a held pump go and no push waits after it; error reaches the reader', async () => {
    const output = new PumpedOutput({ maxBufferedBytes: 16 * KiB });
    let waiting: Promise<void> | undefined;
    while (!waiting) waiting = output.push(new Uint8Array(8 * KiB));
    output.release();
    await waiting;
    expect(output.push(new Uint8Array(64 * KiB))).toBeUndefined();
    const failure = new Error('the connection dropped');
    output.error(failure);
    const reader = output.stream.getReader();
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return;
      })(),
    ).rejects.toBe(failure);
  });
});
