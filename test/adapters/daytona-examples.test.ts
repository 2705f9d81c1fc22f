/**
 * Runs examples/daytona-*.ts against the Daytona emulator, as a user would run them against
 * Daytona: the adapter finds the emulator through DAYTONA_API_URL and DAYTONA_API_KEY; then each
 * again on the local provider with its one provider line swapped, as its header says (all but the
 * declarative image: the local provider builds no images). The examples import
 * `sandport/daytona`, which resolves to dist/ (built by `npm test`'s pretest). Preview host names
 * end in `.localhost`: the examples run with a preload that resolves them to loopback.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample, runWithProviderLine } from '../examples/example-runner.js';
import { spawnDaytonaEmulator, type DaytonaEmulatorProcess } from '../emulators/daytona/spawn.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'daytona', 'index.js'));
if (!built) console.warn('skipping the Daytona examples: dist/daytona is missing (run `npm run build`)');
const daytonaLine = "const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();";
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

const examples: Array<[string, RegExp, boolean]> = [
  [
    'daytona-run-code.ts',
    /python: hello from Daytona, 45\nstdout: to stdout \| stderr: to stderr \| exit 4\nargv: it's a "quoted" \$HOME\nsorted: apple, fig, pear/,
    true,
  ],
  [
    'daytona-streamed-logs.ts',
    /streamed: tick 1 \/ tick 2 \/ tick 3; stderr: done; exit 0\nechoed: HELLO\nechoed: DAYTONA\nafter EOF: bye \(exit 0\)/,
    true,
  ],
  [
    'daytona-files.ts',
    /round trip intact: true \(3145728 bytes\)\nin the sandbox: written from the host, read in the sandbox\nlisted: blob\.bin file 3145728 bytes\nlisted: notes\.txt file 43 bytes\nstat: \/tmp\/work\/notes\.txt file\nremoved: true/,
    true,
  ],
  ['daytona-preview-server.ts', /GET the preview URL -> served from the Daytona sandbox/, true],
  ['daytona-snapshots.ts', /snapshot taken\nthe copy has: prepared once\na second copy still has: prepared once\nsnapshot deleted/, true],
  ['daytona-declarative-image.ts', /marker: built by the image\npython: 42/, false],
  [
    'daytona-stop-start.ts',
    /after pause\(\): paused\ncalls while stopped are refused with SandboxPausedError: true\nfound by id: paused\nafter resume\(\): running\nfiles kept: written before the stop\nthe worker runs on from where it was: true/,
    true,
  ],
];

describe.skipIf(!built)(`daytona examples${built ? '' : ' (skipped: dist/daytona is missing, run npm run build)'}`, () => {
  let emulator: DaytonaEmulatorProcess | undefined;
  beforeAll(async () => {
    emulator = await spawnDaytonaEmulator();
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it.each(examples)(
    'examples/%s against the emulator',
    async (file, expected) => {
      const result = await runExample(join(root, 'examples', file), {
        ...process.env,
        DAYTONA_API_URL: emulator!.url,
        DAYTONA_API_KEY: emulator!.apiKey,
      });
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );

  it.each(examples.filter(([, , local]) => local))(
    'examples/%s on the local provider by changing one line',
    async (file, expected) => {
      const result = await runWithProviderLine(file, daytonaLine, localLine, process.env);
      expect(result.providerLines, 'the one provider line').toBe(1);
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
