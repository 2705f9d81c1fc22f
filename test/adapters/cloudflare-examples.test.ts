/**
 * Runs examples/cloudflare-*.ts against the bridge emulator (both bridge versions), as a user
 * would run them against a deployed bridge: the adapter finds it through
 * CLOUDFLARE_SANDBOX_BRIDGE_URL and CLOUDFLARE_SANDBOX_BRIDGE_TOKEN; then each again on the local
 * provider with its one provider line swapped, as its header says. The examples import
 * `sandport/cloudflare`, which resolves to dist/ (built by `npm test`'s pretest). The emulator's
 * tunnel host names end in `.localhost`: the examples run with a preload that resolves them to loopback.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample, runWithProviderLine } from '../examples/example-runner.js';
import { spawnCloudflareBridgeEmulator, type CloudflareBridgeEmulatorProcess } from '../emulators/cloudflare/spawn.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'cloudflare', 'index.js'));
if (!built) console.warn('skipping the Cloudflare examples: dist/cloudflare is missing (run `npm run build`)');
const cloudflareLine = "const provider: SandboxProvider = (await import('sandport/cloudflare')).createCloudflareSandboxProvider();";
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

const examples: Array<[string, RegExp]> = [
  [
    'cloudflare-run-command.ts',
    /stdout: hello from the container\nstderr: a warning\nexit 3\nenv: it's \$HOME, "quoted"\ntick 1 \/ tick 2 \/ tick 3 \(exit 0\)/,
  ],
  [
    'cloudflare-files.ts',
    /round trip intact: true \(3145728 bytes\)\nlisted: blob\.bin file 3145728 bytes\nlisted: notes\.txt file 24 bytes\noutside \/workspace: \{"outside": "\/workspace"\}\nstat: \/tmp\/elsewhere\/config\.json file, 25 bytes\nremoved: true/,
  ],
  ['cloudflare-server-and-tunnel.ts', /GET https?:\/\/\S+ -> served from the sandbox/],
  ['cloudflare-persist-hydrate.ts', /saved the workspace: a \d+-byte tar\nrestored state: \{"turn": 7\}\nrestored history: history line/],
];

describe.skipIf(!built)(`cloudflare examples${built ? '' : ' (skipped: dist/cloudflare is missing, run npm run build)'}`, () => {
  for (const version of ['0.12', '0.13'] as const) {
    describe(`against the bridge emulator ${version}`, () => {
      let emulator: CloudflareBridgeEmulatorProcess | undefined;
      beforeAll(async () => {
        emulator = await spawnCloudflareBridgeEmulator({ version });
      }, 120_000);
      afterAll(() => emulator?.close(), 120_000);

      it.each(examples)(
        'examples/%s',
        async (file, expected) => {
          const result = await runExample(join(root, 'examples', file), {
            ...process.env,
            CLOUDFLARE_SANDBOX_BRIDGE_URL: emulator!.url,
            CLOUDFLARE_SANDBOX_BRIDGE_TOKEN: emulator!.token,
          });
          expect(result.stderr).not.toMatch(/Error/);
          expect(result.code).toBe(0);
          expect(result.stdout).toMatch(expected);
        },
        110_000,
      );
    });
  }

  it.each(examples)(
    'examples/%s on the local provider by changing one line',
    async (file, expected) => {
      const result = await runWithProviderLine(file, cloudflareLine, localLine, process.env);
      expect(result.providerLines, 'the one provider line').toBe(1);
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
