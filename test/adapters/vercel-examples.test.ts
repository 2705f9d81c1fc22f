/**
 * Runs examples/vercel-*.ts against the Vercel emulator, as a user would run them against Vercel:
 * the adapter takes its credentials from VERCEL_TOKEN, VERCEL_TEAM_ID and VERCEL_PROJECT_ID, and
 * finds the emulator through SANDPORT_VERCEL_API_URL and its tunnel edge through
 * SANDPORT_VERCEL_TUNNEL_BASE_URL; then each again on the local provider with its one provider
 * line swapped, as its header says. The examples import `sandport/vercel`, which resolves to dist/
 * (built by `npm test`'s pretest). The edge's host names end in `.localhost`: the examples run
 * with a preload that resolves them to loopback.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample, runWithProviderLine } from '../examples/example-runner.js';
import { defaultRootfsBuilt } from '../emulators/vercel/index.js';
import { spawnVercelEmulator, type VercelEmulatorProcess } from '../emulators/vercel/spawn.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'vercel', 'index.js')) && defaultRootfsBuilt();
if (!built)
  console.warn(
    'skipping the Vercel examples: dist/vercel or the emulator image is missing (npm run build; scripts/build-vercel-images.sh)',
  );
const vercelLine = "const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();";
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

const examples: Array<[string, RegExp]> = [
  [
    'vercel-run-command.ts',
    /stdout: hello from the sandbox\nstderr: a warning\nexit 3\nargv: with space\|it's\|\$HOME\|\ntick 1 \/ tick 2 \/ tick 3 \(exit 0\)/,
  ],
  ['vercel-dev-server.ts', /GET https?:\/\/\S+\/hello -> served from the sandbox: \/hello/],
  [
    'vercel-files.ts',
    /cat: written from the host, read in a sandbox\nround trip intact: true \(6291456 bytes\)\nlisted: blob\.bin file 6291456 bytes\nlisted: notes\.txt file 41 bytes\nstat: \/tmp\/work\/notes\.txt file, mode 6\d\d\nremoved: true/,
  ],
  ['vercel-network-policy.ts', /blocked sandbox, example\.com: refused\nallowlisted sandbox, example\.org: refused/],
  [
    'vercel-snapshots.ts',
    /snapshot of (vercel|local): taken\noriginal still runs: running, reads v2, written after the snapshot\ncopy reads v1\nsnapshot deleted/,
  ],
  ['vercel-extend-timeout.ts', /created for 60 s: running\nextended to 10 minutes from now: running\nstill runs commands: yes/],
];

describe.skipIf(!built)(`vercel examples${built ? '' : ' (skipped: dist/vercel or the emulator image is missing)'}`, () => {
  let emulator: VercelEmulatorProcess | undefined;
  beforeAll(async () => {
    // The allowlist example needs the test internet behind the emulator's sandboxes.
    emulator = await spawnVercelEmulator({ testInternet: true });
  }, 120_000);
  afterAll(() => emulator?.close(), 120_000);

  it.each(examples)(
    'examples/%s against the emulator',
    async (file, expected) => {
      const result = await runExample(join(root, 'examples', file), {
        ...process.env,
        VERCEL_TOKEN: emulator!.token,
        VERCEL_TEAM_ID: emulator!.teamId,
        VERCEL_PROJECT_ID: emulator!.projectId,
        SANDPORT_VERCEL_API_URL: emulator!.baseUrl,
        SANDPORT_VERCEL_TUNNEL_BASE_URL: emulator!.tunnelBaseUrl,
        VERCEL_TELEMETRY_DISABLED: '1',
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
      const result = await runWithProviderLine(file, vercelLine, localLine, process.env);
      expect(result.providerLines, 'the one provider line').toBe(1);
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
