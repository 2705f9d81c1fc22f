/**
 * The Daytona emulator in a child process (`spawnDaytonaEmulator`), as the adapter's suite and
 * the benchmark run it: the real SDK creates, executes and reaches a preview link from this
 * process (with `installLocalhostResolution()` here, since the child's hook is its own), and
 * `close` ends the child and its sandboxes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Daytona } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installLocalhostResolution, previewTokenHeader, spawnDaytonaEmulator, type DaytonaEmulatorProcess } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

let emulator: DaytonaEmulatorProcess | undefined;
let uninstall: (() => void) | undefined;

beforeAll(async () => {
  if (!imageBuilt) return;
  uninstall = installLocalhostResolution();
  emulator = await spawnDaytonaEmulator({ apiKey: 'dtn_spawned' });
}, 60_000);

afterAll(async () => {
  await emulator?.close();
  uninstall?.();
});

describe.skipIf(!imageBuilt)(`Daytona emulator in a child process${needsImage}`, () => {
  it('serves the SDK from the child: create, execute, a preview link, and close ends it all', async () => {
    const daytona = new Daytona({ apiUrl: emulator!.url, apiKey: emulator!.apiKey, target: 'us' });
    expect(emulator!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api$/);
    const sandbox = await daytona.create();
    expect((await sandbox.process.executeCommand('echo from-child')).result).toBe('from-child\n');
    await sandbox.process.createSession('server');
    await sandbox.process.executeSessionCommand('server', {
      command: 'cd /tmp && echo served > index.html && python3 -m http.server 8000',
      runAsync: true,
    });
    const link = await sandbox.getPreviewLink(8000);
    let body = '';
    for (let attempt = 0; attempt < 200 && body !== 'served\n'; attempt++) {
      const response = await fetch(`${link.url}/index.html`, { headers: { [previewTokenHeader]: link.token } }).catch(() => undefined);
      body = response?.status === 200 ? await response.text() : '';
      if (body !== 'served\n') await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(body).toBe('served\n');
    await daytona[Symbol.asyncDispose]();
    await emulator!.close();
    const after = await fetch(`${emulator!.url}/sandbox`, { headers: { authorization: 'Bearer dtn_spawned' } }).catch(
      (error: Error) => error,
    );
    expect(after).toBeInstanceOf(Error);
  });
});
