/**
 * The E2B emulator's egress rules through the real `e2b` SDK's own calls, as an E2B user writes
 * them: `network.allowOut` with `denyOut: [ALL_TRAFFIC]` at create (CIDRs, IPs and host names;
 * allowOut wins over denyOut), `allowInternetAccess: false`, and `sandbox.updateNetwork` on a
 * running sandbox. The emulator's local provider dials a test internet (test/egress-internet.ts:
 * `allowed.test`, `denied.test` on servers of this process), so curl inside the sandbox reaches
 * only what the rules allow.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_TRAFFIC, Sandbox, type SandboxError } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testInternetNames } from '../egress-internet.js';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir } from './e2b/e2b-templates.js';

const base = join(e2bImagesDir(), 'base');
const baseReady = existsSync(join(base, '.sandport-complete')) && existsSync(join(base, 'usr/bin/curl')) && process.getuid?.() === 0;
const needsBase = baseReady
  ? ''
  : ' (skipped: needs root and a base rootfs with curl from scripts/build-e2b-images.sh, rebuilt since build-rootfs.sh added curl)';

let emulator: E2bEmulator;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
const sandboxes: Sandbox[] = [];

const allowed = testInternetNames['allowed.test']!;
const denied = testInternetNames['denied.test']!;

async function create(createOptions: Parameters<typeof Sandbox.create>[1] = {}): Promise<Sandbox> {
  const sandbox = await Sandbox.create('base', { ...options, timeoutMs: 120_000, ...createOptions });
  sandboxes.push(sandbox);
  return sandbox;
}

/** curl inside the sandbox (through the proxy variables its environment has): the body, or why not. */
async function fetchIn(sandbox: Sandbox, url: string): Promise<{ exitCode: number; stdout: string }> {
  const result = await sandbox.commands
    .run(`curl -sS -k --fail --connect-timeout 10 --max-time 20 '${url}'`)
    .catch((error: { exitCode?: number; stdout?: string }) => error);
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout ?? '' };
}

async function reaches(sandbox: Sandbox, url: string): Promise<boolean> {
  const fetched = await fetchIn(sandbox, url);
  return fetched.exitCode === 0 && fetched.stdout.startsWith('hello from ');
}

async function failure(call: Promise<unknown>): Promise<SandboxError & { statusCode?: number }> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome as SandboxError & { statusCode?: number };
}

beforeAll(async () => {
  emulator = await startE2bEmulator({ testInternet: true });
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
});

afterAll(async () => {
  for (const sandbox of sandboxes) await sandbox.kill().catch(() => undefined);
  await emulator?.close();
});

describe.skipIf(!baseReady)(`egress allowlists through the SDK${needsBase}`, () => {
  it('allows out only what allowOut lists when denyOut denies all traffic, and getInfo reports the rules', async () => {
    const sandbox = await create({ network: { allowOut: ['allowed.test'], denyOut: [ALL_TRAFFIC] } });
    expect(await fetchIn(sandbox, 'https://allowed.test/')).toEqual({ exitCode: 0, stdout: `hello from ${allowed}` });
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
    // The allowed name's own address is not on the list.
    expect(await reaches(sandbox, `https://${allowed}/`)).toBe(false);
    expect((await sandbox.getInfo()).network).toMatchObject({ allowOut: ['allowed.test'], denyOut: [ALL_TRAFFIC] });
  }, 120_000);

  it('takes IP addresses and CIDR blocks in allowOut, with the callback form of the SDK', async () => {
    const byAddress = await create({ network: { allowOut: [allowed], denyOut: ({ allTraffic }) => [allTraffic] } });
    expect(await reaches(byAddress, `https://${allowed}/`)).toBe(true);
    // A name resolving into an allowed block is allowed too.
    expect(await reaches(byAddress, 'https://allowed.test/')).toBe(true);
    expect(await reaches(byAddress, 'https://denied.test/')).toBe(false);
    const byBlock = await create({ network: { allowOut: [`${denied}/32`], denyOut: [ALL_TRAFFIC] } });
    expect(await reaches(byBlock, `https://${denied}/`)).toBe(true);
    expect(await reaches(byBlock, 'https://allowed.test/')).toBe(false);
  }, 120_000);

  it('lets allowOut win over allowInternetAccess: false and over denyOut entries that name the same destination', async () => {
    const sandbox = await create({ allowInternetAccess: false, network: { allowOut: ['allowed.test'], denyOut: [`${allowed}/32`] } });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
  }, 120_000);

  it('updateNetwork replaces the rules for the next connection; opening to all traffic is refused as not emulated and changes nothing', async () => {
    const sandbox = await create({ network: { allowOut: ['allowed.test'], denyOut: [ALL_TRAFFIC] } });
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);

    await sandbox.updateNetwork({ allowOut: ['allowed.test', 'denied.test'], denyOut: [ALL_TRAFFIC] });
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(true);
    expect((await sandbox.getInfo()).network).toMatchObject({ allowOut: ['allowed.test', 'denied.test'] });

    await sandbox.updateNetwork({ denyOut: [ALL_TRAFFIC] });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(false);

    await sandbox.updateNetwork({ allowOut: ['allowed.test'], allowInternetAccess: false });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);

    const opened = await failure(sandbox.updateNetwork({}));
    expect(opened.statusCode).toBe(501);
    expect(opened.message).toContain(`PUT /sandboxes/${sandbox.sandboxId}/network (updateNetwork) is not emulated`);
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
    expect((await sandbox.getInfo()).network).toMatchObject({ allowOut: ['allowed.test'] });
  }, 180_000);

  it('refuses a partial denyOut and a malformed allowOut entry with a 400 naming the field, leaving the rules as they were', async () => {
    const sandbox = await create({ network: { allowOut: ['allowed.test'], denyOut: [ALL_TRAFFIC] } });
    const partial = await failure(sandbox.updateNetwork({ denyOut: ['10.0.0.0/8'] }));
    expect(partial.statusCode).toBe(400);
    expect(partial.message).toContain('denyOut: denying single destinations (10.0.0.0/8)');
    const malformed = await failure(sandbox.updateNetwork({ allowOut: ['10.0.0.0/33'], denyOut: [ALL_TRAFFIC] }));
    expect(malformed.statusCode).toBe(400);
    expect(malformed.message).toContain('allowOut.0: "10.0.0.0/33"');
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
  }, 120_000);

  it('refuses to restrict a sandbox created open, naming the call', async () => {
    const sandbox = await create();
    const narrowed = await failure(sandbox.updateNetwork({ allowOut: ['allowed.test'], denyOut: [ALL_TRAFFIC] }));
    expect(narrowed.statusCode).toBe(501);
    expect(narrowed.message).toContain('keeps its route out');
  }, 120_000);
});
