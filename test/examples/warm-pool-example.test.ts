/**
 * examples/warm-pool.ts runs as written (the local provider), and on the Modal emulator with only
 * its provider line changed, as its header says. The example imports `sandport`, which resolves
 * to dist/ (built by `npm test`'s pretest).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModalEmulator, type ModalEmulatorProcess } from '../emulators/modal/spawn.js';
import { localProviderLine, modalExampleEnv, modalProviderLine, runExample, runWithProviderLine } from './example-runner.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'index.js')) && existsSync(join(root, 'dist', 'modal', 'index.js'));
const file = join(root, 'examples', 'warm-pool.ts');
const expected =
  /pool is warm: 2 sandboxes ready\njob 1 done, job 2 done, job 3 done\nhanded over: warm, warm, cold\npool is warm again: 2 ready\n[\s\S]*closed: 0 sandboxes left running/;

describe.skipIf(!built)(`examples/warm-pool.ts${built ? '' : ' (skipped: dist/ is missing, run npm run build)'}`, () => {
  let emulator: ModalEmulatorProcess | undefined;
  beforeAll(async () => {
    emulator = await spawnModalEmulator();
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it('runs on the local provider as written', async () => {
    const source = readFileSync(file, 'utf8');
    expect(
      source.split('\n').filter((line) => line === localProviderLine),
      'the one provider line',
    ).toHaveLength(1);
    const result = await runExample(file, process.env);
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(expected);
  }, 120_000);

  it('runs on the Modal emulator with only the provider line changed', async () => {
    const result = await runWithProviderLine('warm-pool.ts', localProviderLine, modalProviderLine, {
      ...process.env,
      ...modalExampleEnv(emulator!.url),
    });
    expect(result.providerLines).toBe(1);
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(expected);
  }, 120_000);
});
