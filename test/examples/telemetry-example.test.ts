/**
 * examples/telemetry-export.ts runs as written (the local provider), and on the Modal emulator
 * with only its provider line changed, as its header says: the sandbox calls are spans nested
 * under the app's job span, the failing read has status ERROR. The example imports `sandport`,
 * which resolves to dist/ (built by `npm test`'s pretest).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ModalEmulatorProcess, spawnModalEmulator } from '../emulators/modal/spawn.js';
import { localProviderLine, modalExampleEnv, modalProviderLine, runExample, runWithProviderLine } from './example-runner.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'telemetry', 'index.js')) && existsSync(join(root, 'dist', 'modal', 'index.js'));
const file = join(root, 'examples', 'telemetry-export.ts');

/** The tree the example prints for a provider: each call a child of the job span. */
function expectedTree(provider: string): string {
  const p = `sandport.provider=${provider}`;
  return [
    'total sales: 42',
    'build-report',
    `  sandport.create ${p}`,
    `  sandport.files.write ${p} file.path=/workspace/data.csv`,
    `  sandport.run ${p} process.executable.name=awk sandport.exec.exit_code=0`,
    `  sandport.files.write ${p} file.path=/workspace/report.txt`,
    `  sandport.files.read_text ${p} file.path=/workspace/report.txt`,
    `  sandport.files.read ERROR ${p} file.path=/workspace/missing.txt error.type=file_not_found`,
    `  sandport.terminate ${p}`,
    '',
  ].join('\n');
}

describe.skipIf(!built)(`examples/telemetry-export.ts${built ? '' : ' (skipped: dist/ is missing, run npm run build)'}`, () => {
  let emulator: ModalEmulatorProcess | undefined;
  beforeAll(async () => {
    emulator = await spawnModalEmulator();
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it('runs on the local provider as written and prints the span tree', async () => {
    const source = readFileSync(file, 'utf8');
    expect(
      source.split('\n').filter((line) => line === localProviderLine),
      'the one provider line',
    ).toHaveLength(1);
    const result = await runExample(file, process.env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(expectedTree('local'));
  }, 120_000);

  it('runs on the Modal emulator with only the provider line changed', async () => {
    const result = await runWithProviderLine('telemetry-export.ts', localProviderLine, modalProviderLine, {
      ...process.env,
      ...modalExampleEnv(emulator!.url),
    });
    expect(result.providerLines).toBe(1);
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(expectedTree('modal'));
  }, 120_000);
});
