/**
 * Daytona resources through the adapter, against the emulator: cpu, memory and disk reach the
 * sandbox as Daytona records them (whole cores, GiB), and a GPU request reaches Daytona's create
 * as `gpu` and `gpuType`. The emulator has no GPUs, so it refuses a GPU count with a 501 naming
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

async function sandboxCount(): Promise<number> {
  let count = 0;
  for await (const _sandbox of daytona.list()) count++;
  return count;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  );
}

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
