/**
 * Fly adapter behaviour the conformance suite leaves to the adapter: lookups from another
 * process (`crossProcessLookup`), the lifetime held inside the machine (it ends when the creating
 * process is gone), and named volumes mounted read-write. Against the Fly emulator in a child
 * process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlySandboxProvider, type FlySandboxProvider } from '../../adapters/fly/index.js';
import { SandboxNotFoundError } from '../../src/kit/index.js';
import { spawnFlyEmulator, type FlyEmulatorProcess } from '../emulators/fly/spawn.js';

const root = join(import.meta.dirname, '..', '..');
let emulator: FlyEmulatorProcess | undefined;
let provider: FlySandboxProvider;
let work: string;

/** Runs a tsx script in a child process that creates a sandbox and exits without ending it; resolves its id. */
async function createElsewhere(options: string): Promise<string> {
  const script = join(work, `create-${Date.now()}.mts`);
  writeFileSync(
    script,
    [
      `import { createFlySandboxProvider } from ${JSON.stringify(join(root, 'adapters', 'fly', 'index.ts'))};`,
      `const provider = createFlySandboxProvider({ apiHostname: ${JSON.stringify(emulator!.url)}, token: ${JSON.stringify(emulator!.token)} });`,
      `const sandbox = await provider.create(${options});`,
      'console.log(sandbox.id);',
      // Gone without terminate: what the creator held in memory goes with it.
      'process.exit(0);',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, timeout: 90_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(stderr).not.toMatch(/Error/);
  expect(code).toBe(0);
  return stdout.trim();
}

describe('fly adapter behaviour (against the emulator)', () => {
  beforeAll(async () => {
    emulator = await spawnFlyEmulator();
    provider = createFlySandboxProvider({ apiHostname: emulator.url, token: emulator.token });
    work = mkdtempSync(join(tmpdir(), 'fly-behaviour-'));
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('finds a sandbox another process created, by id, by name and in list, with its tags', async () => {
    const name = `elsewhere-${process.pid}`;
    const id = await createElsewhere(`{ name: ${JSON.stringify(name)}, tags: { made: 'elsewhere' }, timeoutMs: 120_000 }`);
    const found = await provider.fromId(id);
    expect((await found.run(['echo', 'reached'])).stdout).toBe('reached\n');
    expect(await found.getTags()).toEqual({ made: 'elsewhere' });
    expect((await provider.fromName(name)).id).toBe(id);
    expect((await provider.list({ tags: { made: 'elsewhere' } })).map((info) => info.id)).toEqual([id]);
    await found.terminate();
    await expect(provider.fromId(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
  }, 120_000);

  it('ends a sandbox at its lifetime inside the machine, after the creating process is gone', async () => {
    const id = await createElsewhere('{ timeoutMs: 3_000 }');
    // Nothing in this process arms a timer for it: only the machine's keeper can end it.
    const [app, machineId] = id.split(':') as [string, string];
    let state = 'started';
    for (let attempt = 0; attempt < 60 && state !== 'destroyed'; attempt++) {
      state = await provider.client.getMachine(app, machineId).then(
        (machine) => machine.state,
        (error: unknown) => (SandboxNotFoundError.isInstance(error) ? 'destroyed' : Promise.reject(error)),
      );
      if (state !== 'destroyed') await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(state).toBe('destroyed');
    await expect(provider.fromId(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
    await provider.client.deleteApp(app).catch(() => undefined);
  }, 120_000);

  it('mounts a named volume read-write at its path', async () => {
    await using sandbox = await provider.create({ volumes: { '/data': 'notes' } });
    await sandbox.files.write('/data/kept.txt', 'on the volume\n');
    const mounts = await sandbox.run(['/bin/sh', '-c', 'grep " /data " /proc/mounts']);
    expect(mounts.stdout).toContain(' /data ');
    expect(await sandbox.files.readText('/data/kept.txt')).toBe('on the volume\n');
    const volumes = await provider.client.listVolumes(sandbox.app);
    expect(volumes.map((volume) => volume.name)).toEqual(['notes']);
  }, 120_000);
});
