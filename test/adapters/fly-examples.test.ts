/**
 * Runs examples/fly-*.ts against the Fly emulator, as a user would run them against Fly: the
 * adapter finds the emulator through FLY_API_HOSTNAME and FLY_API_TOKEN, its public host names
 * through SANDPORT_FLY_PUBLIC_DOMAIN; then each again on the local provider with its one provider
 * line swapped, as its header says. The examples import `sandport/fly`, which resolves to dist/
 * (built by `npm test`'s pretest). The edge's host names end in `.localhost`: the examples run
 * with a preload that resolves them to loopback.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample, runWithProviderLine } from '../examples/example-runner.js';
import { spawnFlyEmulator, type FlyEmulatorProcess } from '../emulators/fly/spawn.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'fly', 'index.js'));
if (!built) console.warn('skipping the Fly examples: dist/fly is missing (run `npm run build`)');
const flyLine = "const provider: SandboxProvider = (await import('sandport/fly')).createFlySandboxProvider();";
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

const examples: Array<[string, RegExp]> = [
  [
    'fly-run-command.ts',
    /stdout: hello from the machine\nstderr: a warning\nexit 3\nsorted: apple, fig, pear\ntick 1 \/ tick 2 \/ tick 3 \(exit 0\)/,
  ],
  ['fly-server-and-service.ts', /GET https?:\/\/\S+ -> served from the machine/],
  [
    'fly-files.ts',
    /round trip intact: true \(6291456 bytes\)\nlisted: blob\.bin file 6291456 bytes\nlisted: notes\.txt file 39 bytes\nstat: \/tmp\/work\/notes\.txt file, mode 6\d\d\nremoved: true/,
  ],
  [
    'fly-suspend-start.ts',
    /status: paused\ncommands wait for the start: true\nstatus: running\nthe background process counts on from where it was: true/,
  ],
];

describe.skipIf(!built)(`fly examples${built ? '' : ' (skipped: dist/fly is missing, run npm run build)'}`, () => {
  let emulator: FlyEmulatorProcess | undefined;
  beforeAll(async () => {
    emulator = await spawnFlyEmulator();
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it.each(examples)(
    'examples/%s against the emulator',
    async (file, expected) => {
      const result = await runExample(join(root, 'examples', file), {
        ...process.env,
        FLY_API_HOSTNAME: emulator!.url,
        FLY_API_TOKEN: emulator!.token,
        SANDPORT_FLY_PUBLIC_DOMAIN: emulator!.edgeDomain,
      });
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );

  it.each(examples)(
    'examples/%s on the local provider by changing one line',
    async (file, expected) => {
      const result = await runWithProviderLine(file, flyLine, localLine, process.env);
      expect(result.providerLines, 'the one provider line').toBe(1);
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
