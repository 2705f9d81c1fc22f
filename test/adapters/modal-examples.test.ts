/**
 * Runs examples/modal-*.ts against the Modal emulator, as a user would run them against Modal.
 * The examples import `sandport/modal`, which resolves to dist/ (built by `npm test`'s pretest).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModalEmulator, type ModalEmulator } from '../emulators/modal/index.js';
import { modalExampleEnv, runExample } from '../examples/example-runner.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'modal', 'index.js'));
if (!built)
  console.warn(
    'skipping the Modal examples: dist/modal is missing (run `npm run build`; the sandport/modal entry must be in tsup.config.ts)',
  );

const examples: Array<[string, RegExp]> = [
  ['modal-hello-exec.ts', /exit 0: hello from 3\./],
  ['modal-streaming-output.ts', /stdout: tick 3[\s\S]*exit 0/],
  ['modal-stdin.ts', /got: third[\s\S]*exit 0/],
  ['modal-entrypoint.ts', /ended: entrypoint-exited, exit code 3/],
  ['modal-named-lookup.ts', /the named one[\s\S]*same sandbox: true[\s\S]*duplicate name rejected: true/],
  ['modal-tags-and-list.ts', /: 2 sandboxes[\s\S]*after retagging: 2 sandboxes/],
  ['modal-secrets-and-env.ts', /hello from exec; token has 16 characters/],
  ['modal-volumes.ts', /read back from the volume: \d+[\s\S]*refuses writes: true/],
  ['modal-tunnels.ts', /-> served from the sandbox/],
  ['modal-snapshots.ts', /the copy sees: \{"prepared"/],
  [
    'modal-pty.ts',
    /terminal: \/dev\/pts\/\d+, TERM=xterm-256color\nsize: 30 100\nafter resize: 40 120\ninterrupted: sleep ended with 130\nshell exited 0/,
  ],
  [
    'modal-watch.ts',
    /create \/tmp\/inbox\/notes\.txt[\s\S]*rename \/tmp\/inbox\/sub\/notes\.txt \(from \/tmp\/inbox\/notes\.txt\)[\s\S]*remove \/tmp\/inbox\/sub\/scratch\.txt[\s\S]*create \/tmp\/inbox\/done\nthe writer exited 0/,
  ],
  [
    'modal-server-logs.ts',
    /server says: Serving HTTP on 127\.0\.0\.1 port 8000[\s\S]*log: .*"GET \/ HTTP\/1\.1" 200[\s\S]*log: .*"GET \/missing HTTP\/1\.1" 404/,
  ],
];

describe.skipIf(!built)('modal examples against the emulator', () => {
  let emulator: ModalEmulator;
  beforeAll(async () => {
    emulator = await startModalEmulator();
  });
  afterAll(() => emulator?.close(), 120_000);

  it.each(examples)(
    'examples/%s',
    async (file, expected) => {
      const env = {
        ...process.env,
        ...modalExampleEnv(emulator.url),
      };
      const { code, stdout, stderr } = await runExample(join(root, 'examples', file), env);
      expect(stderr).not.toMatch(/Error/);
      expect(code).toBe(0);
      expect(stdout).toMatch(expected);
    },
    120_000,
  );
});
