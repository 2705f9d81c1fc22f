/**
 * Runs examples/e2b-*.ts against the E2B emulator, as a user would run them against E2B: the
 * SDK finds the emulator through E2B_API_URL, E2B_SANDBOX_URL and E2B_DOMAIN. The examples import
 * `sandport/e2b`, which resolves to dist/ (built by `npm test`'s pretest). The emulator's tunnel
 * host names end in `.localhost`, which this machine's resolver does not answer: the examples
 * run with a preload that resolves them to loopback (`runExample`; the emulator's process does the same).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2bEmulator, type E2bEmulator } from '../emulators/e2b/index.js';
import { e2bImagesDir } from '../emulators/e2b/e2b-templates.js';
import { e2bExamples } from '../examples/e2b-examples-expected.js';
import { runExample } from '../examples/example-runner.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'e2b', 'index.js'));
const template = existsSync(join(e2bImagesDir(), 'base'));
const missing = !built
  ? 'dist/e2b is missing (run `npm run build`)'
  : !template
    ? `the emulator's base template is missing at ${e2bImagesDir()}/base (run scripts/build-e2b-images.sh)`
    : undefined;
if (missing) console.warn(`skipping the E2B examples: ${missing}`);

describe.skipIf(missing !== undefined)(`e2b examples against the emulator${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let emulator: E2bEmulator;
  beforeAll(async () => {
    emulator = await startE2bEmulator();
  });
  afterAll(() => emulator?.close(), 120_000);

  it.each(e2bExamples.map(({ file, expected }) => [file, expected] as const))(
    'examples/%s',
    async (file, expected) => {
      const env = {
        ...process.env,
        E2B_API_URL: emulator.url,
        E2B_SANDBOX_URL: emulator.sandboxUrl,
        E2B_DOMAIN: emulator.domain,
        E2B_API_KEY: 'e2b_examples',
      };
      const { code, stdout, stderr } = await runExample(join(root, 'examples', file), env);
      expect(stderr).not.toMatch(/Error/);
      expect(code).toBe(0);
      expect(stdout).toMatch(expected);
    },
    120_000,
  );
});
