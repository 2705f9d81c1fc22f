/**
 * Daytona volumes through the adapter, against the emulator: a volume made with the SDK's own
 * `daytona.volume.get(name, true)` is mounted by name, keeps what one sandbox wrote for the next,
 * and cannot be deleted while mounted; a missing volume and a read-only mount are refused before
 * anything is created, naming `volumes`.
 */
import { Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDaytonaSandboxProvider, type DaytonaSandboxProvider } from '../../adapters/daytona/index.js';
import { SandboxInvalidArgumentError } from '../../src/index.js';
import { spawnDaytonaEmulator, type DaytonaEmulatorProcess } from '../emulators/daytona/spawn.js';

let emulator: DaytonaEmulatorProcess;
let daytona: Daytona;
let provider: DaytonaSandboxProvider;

beforeAll(async () => {
  emulator = await spawnDaytonaEmulator();
  daytona = new Daytona({ apiKey: emulator.apiKey, apiUrl: emulator.url });
  provider = createDaytonaSandboxProvider({ apiKey: emulator.apiKey, apiUrl: emulator.url });
}, 120_000);
afterAll(() => emulator?.close(), 120_000);

/** How many sandboxes the emulator lists. */
async function sandboxCount(): Promise<number> {
  let count = 0;
  for await (const _sandbox of daytona.list()) count++;
  return count;
}

/** What a promise rejected with (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('daytona volumes (real SDK against the emulator)', () => {
  it('mounts a volume by name and keeps its files from one sandbox to the next', async () => {
    const volume = await daytona.volume.get('sandport-cache', true);
    expect(volume.state).toBe('ready');
    const first = await provider.create({ volumes: { '/data': 'sandport-cache' } });
    try {
      await first.run(['/bin/sh', '-c', 'echo kept-across-sandboxes > /data/note.txt'], { throwOnNonZeroExit: true });
    } finally {
      await first.terminate();
    }
    const second = await provider.create({ volumes: { '/mnt/cache': { source: 'sandport-cache', readOnly: false } } });
    try {
      expect((await second.files.readText('/mnt/cache/note.txt')).trim()).toBe('kept-across-sandboxes');
      // Daytona keeps a mounted volume: its delete is refused while a sandbox uses it.
      await expect(daytona.volume.delete(volume)).rejects.toThrow();
    } finally {
      await second.terminate();
    }
    await daytona.volume.delete(volume);
  }, 180_000);

  it('refuses a volume that does not exist, naming it, and creates no sandbox', async () => {
    const before = await sandboxCount();
    const error = await rejection(provider.create({ volumes: { '/data': 'no-such-volume' } }));
    expect(SandboxInvalidArgumentError.isInstance(error) && error.argument).toBe('volumes');
    expect((error as Error).message).toContain('"no-such-volume", which does not exist');
    expect(await sandboxCount()).toBe(before);
  }, 60_000);

  it('refuses a read-only mount (Daytona mounts read-write only), failing closed', async () => {
    await daytona.volume.get('sandport-models', true);
    const error = await rejection(provider.create({ volumes: { '/models': { source: 'sandport-models', readOnly: true } } }));
    expect(SandboxInvalidArgumentError.isInstance(error) && error.argument).toBe('volumes');
    expect((error as Error).message).toMatch(/read-write only/);
  }, 60_000);
});
