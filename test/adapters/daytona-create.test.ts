/**
 * What a Daytona create asks for, through the adapter against the emulator.
 *
 * Volumes: a volume made with the SDK's own `daytona.volume.get(name, true)` is mounted by
 * name, keeps what one sandbox wrote for the next, and cannot be deleted while mounted; a missing
 * volume and a read-only mount are refused before anything is created, naming `volumes`.
 *
 * Resources: cpu, memory and disk reach the sandbox as Daytona records them (whole cores, GiB),
 * and a GPU request reaches Daytona's create as `gpu` and `gpuType`. The emulator has no GPUs, so it refuses a GPU count with a 501 naming
 * the call, and an unknown type with Daytona's 400; both arrive as typed errors, and nothing is
 * left behind. A malformed request is refused before any call.
 */
import { Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDaytonaSandboxProvider, type DaytonaSandboxProvider } from '../../adapters/daytona/index.js';
import { SandboxInvalidArgumentError, SandboxProviderError } from '../../src/index.js';
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

describe('daytona resources (real SDK against the emulator)', () => {
  it('cpu, memory and disk reach the sandbox in whole cores and GiB', async () => {
    const sandbox = await provider.create({ cpu: 2, memoryMiB: 1536, providerOptions: { daytona: { diskGiB: 4 } } });
    try {
      expect(sandbox.warnings).toEqual([expect.objectContaining({ setting: 'memoryMiB' })]);
      const native = await daytona.get(sandbox.id);
      expect({ cpu: native.cpu, memory: native.memory, disk: native.disk, gpu: native.gpu }).toEqual({
        cpu: 2,
        memory: 2,
        disk: 4,
        gpu: 0,
      });
    } finally {
      await sandbox.terminate();
    }
  });

  it('a GPU request reaches Daytona: no GPUs here is a provider error naming the call, an unknown type an invalid argument', async () => {
    const before = await sandboxCount();
    const noGpus = await rejection(provider.create({ gpu: 'H100:2' }));
    expect(SandboxProviderError.isInstance(noGpus) && !SandboxInvalidArgumentError.isInstance(noGpus)).toBe(true);
    expect((noGpus as Error).message).toMatch(/no GPUs: POST \/api\/sandbox with gpu 2 is not emulated/);
    const unknownType = await rejection(provider.create({ gpu: 'Z999' }));
    expect(SandboxInvalidArgumentError.isInstance(unknownType)).toBe(true);
    expect((unknownType as Error).message).toMatch(/gpuType.*H100/);
    expect(await sandboxCount()).toBe(before);
  });

  it('a malformed GPU request is refused before any call, naming gpu', async () => {
    const refused = await rejection(provider.create({ gpu: 'H100:0' }));
    expect(SandboxInvalidArgumentError.isInstance(refused) && refused.argument).toBe('gpu');
  });
});
