/**
 * envd answers an upload as soon as the body is in the file: nothing is left to run in the
 * sandbox (and fail) once the file is complete. The emulator used to look up the sandbox's uid map
 * (its first upload) and chown after the body, each a command in the sandbox: a command waiting
 * for the file could exit meanwhile, its sandbox be killed (an entrypoint ending its sandbox), and
 * an upload that had landed fail with a 502. These tests record the commands the emulator starts
 * in the local sandbox and check that the write is the last one before the answer.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { fileToolScripts } from './shared/file-tools.js';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir } from './e2b/e2b-templates.js';

const baseBuilt = existsSync(join(e2bImagesDir(), 'base', '.sandport-complete')) && process.getuid?.() === 0;
const needsBase = baseBuilt ? '' : ' (skipped: needs root and the base rootfs of scripts/build-e2b-images.sh)';

/** Every command the emulator started in a local sandbox, in order: the shell script (or program) it ran. */
const started: string[] = [];

/** A local provider whose sandboxes record the commands started in them (`exec` and `run`). */
function recordingProvider() {
  const provider = createLocalSandboxProvider();
  const create = provider.create.bind(provider);
  provider.create = async (options) => {
    const sandbox = await create(options);
    const record = (command: unknown) => {
      const argv = Array.isArray(command) ? (command as string[]) : [String(command)];
      started.push(argv[0] === '/bin/sh' && argv[1] === '-c' ? argv[2]! : argv.join(' '));
    };
    const exec = sandbox.exec.bind(sandbox);
    const run = sandbox.run.bind(sandbox);
    sandbox.exec = (command, options) => {
      record(command);
      return exec(command, options);
    };
    sandbox.run = (command, options) => {
      record(command);
      return run(command, options);
    };
    return sandbox;
  };
  return provider;
}

let emulator: E2bEmulator | undefined;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  emulator = await startE2bEmulator({ provider: recordingProvider() });
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
});

afterAll(async () => {
  for (const sandbox of sandboxes) await sandbox.kill().catch(() => undefined);
  await emulator?.close();
});

describe.skipIf(!baseBuilt)(`e2b emulator uploads answer once the body is in${needsBase}`, () => {
  // A fresh sandbox: its first upload is the one that used to read the uid map after the body.
  for (const user of ['user', 'root'] as const) {
    it(`the first upload of a sandbox, as ${user}, runs nothing in the sandbox after its write`, async () => {
      const sandbox = await Sandbox.create('base', { ...options, timeoutMs: 120_000 });
      sandboxes.push(sandbox);
      started.length = 0;
      await sandbox.files.write('/tmp/answered/go', '', { user });
      const writes = started.filter((script) => script === fileToolScripts.write);
      expect(writes, 'the upload wrote the file with the write tool, once').toHaveLength(1);
      const after = started.slice(started.lastIndexOf(fileToolScripts.write) + 1);
      expect(after, 'commands the upload started after the write').toEqual([]);
      expect((await sandbox.commands.run('stat -c %s /tmp/answered/go', { user: 'root' })).stdout.trim()).toBe('0');
    });
  }
});
