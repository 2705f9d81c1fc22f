/**
 * The Modal emulator's outbound network settings through the real `modal` SDK's own calls, as a
 * Modal user writes them: `outboundDomainAllowlist` and `outboundCidrAllowlist` at create, and
 * `updateNetworkPolicy` on a running sandbox. The emulator's local provider dials a test
 * internet (test/egress-internet.ts: `allowed.test`, `denied.test` on servers of the emulator's
 * own process), so curl inside the sandbox reaches only what the lists allow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, ModalClient, type Sandbox } from 'modal';
import { testInternetNames } from '../egress-internet.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from './modal/spawn.js';

let emulator: ModalEmulatorProcess | undefined;
let modal: ModalClient;
let app: App;
const started: Sandbox[] = [];

const allowedBody = `hello from ${testInternetNames['allowed.test']}`;

async function sandbox(params: Parameters<ModalClient['sandboxes']['create']>[2] = {}): Promise<Sandbox> {
  const image = modal.images.fromRegistry('debian:bookworm-slim');
  const sb = await modal.sandboxes.create(app, image, { timeoutMs: 10 * 60 * 1000, ...params });
  started.push(sb);
  return sb;
}

/** curl inside the sandbox (through the proxy variables its environment has): the body, or why not. */
async function fetchIn(sb: Sandbox, url: string): Promise<{ exitCode: number; stdout: string }> {
  const process = await sb.exec(['curl', '-sS', '-k', '--fail', '--connect-timeout', '10', '--max-time', '20', url]);
  const [stdout, exitCode] = await Promise.all([process.stdout.readText(), process.wait()]);
  return { exitCode, stdout };
}

async function reaches(sb: Sandbox, url: string): Promise<boolean> {
  const fetched = await fetchIn(sb, url);
  return fetched.exitCode === 0 && fetched.stdout.startsWith('hello from ');
}

async function rejection(call: Promise<unknown>): Promise<Error & { code?: number }> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

describe('modal emulator through the real SDK: outbound allowlists', () => {
  beforeAll(async () => {
    emulator = await spawnModalEmulator({ testInternet: true });
    process.env.MODAL_SERVER_URL = emulator.url;
    modal = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
    app = await modal.apps.fromName('sdk-network', { createIfMissing: true });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(started.map((sb) => sb.terminate().catch(() => undefined)));
    modal?.close();
    await emulator?.close();
  }, 120_000);

  it('reaches a name on outboundDomainAllowlist, and nothing else', async () => {
    const sb = await sandbox({ outboundDomainAllowlist: ['allowed.test'] });
    const fetched = await fetchIn(sb, 'https://allowed.test/');
    expect(fetched).toEqual({ exitCode: 0, stdout: allowedBody });
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);
    // Not even the allowed name's own address, which no list names.
    expect(await reaches(sb, `https://${testInternetNames['allowed.test']}/`)).toBe(false);
  }, 120_000);

  it('reaches addresses in outboundCidrAllowlist, by address or by a name resolving into it', async () => {
    const sb = await sandbox({ outboundCidrAllowlist: [`${testInternetNames['allowed.test']}/32`] });
    expect(await reaches(sb, `https://${testInternetNames['allowed.test']}/`)).toBe(true);
    expect(await reaches(sb, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);
  }, 120_000);

  it('allows nothing with an empty CIDR allowlist', async () => {
    const sb = await sandbox({ outboundCidrAllowlist: [] });
    expect(await reaches(sb, 'https://allowed.test/')).toBe(false);
    expect(await reaches(sb, `https://${testInternetNames['allowed.test']}/`)).toBe(false);
  }, 120_000);

  it('updateNetworkPolicy replaces both lists for the next connection; allow-all is refused as not emulated and changes nothing', async () => {
    const sb = await sandbox({ outboundDomainAllowlist: ['allowed.test'] });
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);

    await sb.updateNetworkPolicy({ outboundCidrAllowlist: [], outboundDomainAllowlist: ['allowed.test', 'denied.test'] });
    expect(await reaches(sb, 'https://denied.test/')).toBe(true);

    await sb.updateNetworkPolicy({ outboundCidrAllowlist: [`${testInternetNames['denied.test']}/32`], outboundDomainAllowlist: [] });
    expect(await reaches(sb, 'https://denied.test/')).toBe(true);
    expect(await reaches(sb, 'https://allowed.test/')).toBe(false);

    await sb.updateNetworkPolicy({ outboundCidrAllowlist: [], outboundDomainAllowlist: [] });
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);

    await sb.updateNetworkPolicy({ outboundCidrAllowlist: [], outboundDomainAllowlist: ['allowed.test'] });
    const opened = await rejection(sb.updateNetworkPolicy({ outboundCidrAllowlist: ['0.0.0.0/0'], outboundDomainAllowlist: [] }));
    expect(opened.message).toContain('TaskSetNetworkAccess (Sandbox.updateNetworkPolicy) is not emulated');
    expect(await reaches(sb, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);
  }, 180_000);

  it('refuses a malformed list entry as an invalid argument, leaving the lists as they were', async () => {
    const sb = await sandbox({ outboundDomainAllowlist: ['allowed.test'] });
    const error = await rejection(sb.updateNetworkPolicy({ outboundCidrAllowlist: ['10.0.0.0/33'], outboundDomainAllowlist: [] }));
    expect(error.message).toContain('allowCidrs');
    expect(await reaches(sb, 'https://allowed.test/')).toBe(true);
  }, 120_000);

  it('refuses to narrow a sandbox created open, or to open one created with blockNetwork, naming the call', async () => {
    const open = await sandbox();
    const narrowed = await rejection(open.updateNetworkPolicy({ outboundCidrAllowlist: [], outboundDomainAllowlist: ['allowed.test'] }));
    expect(narrowed.message).toContain('TaskSetNetworkAccess (Sandbox.updateNetworkPolicy) is not emulated');
    expect(narrowed.message).toContain('keeps its route out');
    const blocked = await sandbox({ blockNetwork: true });
    const opened = await rejection(blocked.updateNetworkPolicy({ outboundCidrAllowlist: [], outboundDomainAllowlist: ['allowed.test'] }));
    expect(opened.message).toContain('blockNetwork has no network');
  }, 120_000);

  it('the SDK itself refuses an update naming one list only', async () => {
    const sb = await sandbox({ outboundDomainAllowlist: ['allowed.test'] });
    const error = await rejection(sb.updateNetworkPolicy({ outboundDomainAllowlist: ['denied.test'] }));
    expect(error.message).toContain('requires both outboundCidrAllowlist and outboundDomainAllowlist');
    expect(await reaches(sb, 'https://denied.test/')).toBe(false);
  }, 120_000);
});
