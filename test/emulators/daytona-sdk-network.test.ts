/**
 * Network settings as a user of the real `@daytonaio/sdk` sees them, against the emulator on the
 * test internet (../egress-internet.ts: `allowed.test`, `denied.test` on documentation addresses):
 * `domainAllowList` and `networkAllowList` (Daytona's comma strings) at create, `networkBlockAll`,
 * and `updateNetworkSettings` applied to the running sandbox, with what the local sandbox cannot
 * change live refused as not emulated.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Daytona, type CreateSandboxFromSnapshotParams, type DaytonaError, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testInternetNames } from '../egress-internet.js';
import { startDaytonaEmulator, type DaytonaEmulator } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

const allowed = testInternetNames['allowed.test']!;
const denied = testInternetNames['denied.test']!;

let emulator: DaytonaEmulator;
let daytona: Daytona;
const made: Sandbox[] = [];

beforeAll(async () => {
  if (!imageBuilt) return;
  emulator = await startDaytonaEmulator({ testInternet: true });
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: emulator.apiKey, target: 'us' });
});

afterAll(async () => {
  for (const sandbox of made) await sandbox.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
});

async function create(params: CreateSandboxFromSnapshotParams): Promise<Sandbox> {
  const sandbox = await daytona.create(params);
  made.push(sandbox);
  return sandbox;
}

/** curl inside the sandbox (through the proxy variables its environment has). */
async function reaches(sandbox: Sandbox, url: string): Promise<boolean> {
  const result = await sandbox.process.executeCommand(`curl -sS -k --fail --connect-timeout 10 --max-time 20 '${url}'`);
  return result.exitCode === 0 && result.result.startsWith('hello from ');
}

async function failure(call: Promise<unknown>): Promise<DaytonaError> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome as DaytonaError;
}

describe.skipIf(!imageBuilt)(`Daytona emulator: network settings through the SDK${needsImage}`, () => {
  it('domainAllowList lets out only the listed domains', async () => {
    const sandbox = await create({ domainAllowList: 'allowed.test' });
    expect(sandbox.domainAllowList).toBe('allowed.test');
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
  }, 120_000);

  it('networkAllowList (a comma string of CIDRs) lets out only those blocks', async () => {
    const sandbox = await create({ networkAllowList: `${denied}/32,10.0.0.0/8` });
    expect(await reaches(sandbox, `https://${denied}/`)).toBe(true);
    expect(await reaches(sandbox, `https://${allowed}/`)).toBe(false);
  }, 120_000);

  it('networkBlockAll reaches nothing', async () => {
    const sandbox = await create({ networkBlockAll: true });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(false);
  }, 120_000);

  it('updateNetworkSettings changes the allow list of a running sandbox, and get reports it', async () => {
    const sandbox = await create({ domainAllowList: 'allowed.test' });
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
    await sandbox.updateNetworkSettings({ domainAllowList: 'allowed.test,denied.test' });
    expect(sandbox.domainAllowList).toBe('allowed.test,denied.test');
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(true);
    expect((await daytona.get(sandbox.id)).domainAllowList).toBe('allowed.test,denied.test');
  }, 120_000);

  it('restricting a sandbox created open is refused as not emulated (501), naming the call', async () => {
    const sandbox = await create({});
    const error = await failure(sandbox.updateNetworkSettings({ domainAllowList: 'allowed.test' }));
    expect(error.statusCode).toBe(501);
    expect(error.message).toContain(`POST /api/sandbox/${sandbox.id}/network-settings (updateNetworkSettings) is not emulated`);
    expect((await daytona.get(sandbox.id)).domainAllowList).toBeUndefined();
  }, 120_000);
});
