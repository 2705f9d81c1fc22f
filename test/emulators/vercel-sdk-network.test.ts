/**
 * The Vercel emulator's network as a user of the real `@vercel/sandbox` SDK sees it: network
 * policies at create (`allow-all`, `deny-all`, domain allowlists, subnets allowed and denied),
 * changed live (`sandbox.update({ networkPolicy })`, the deprecated `updateNetworkPolicy`), what
 * the emulator refuses (per-domain rules: a 501 naming them), and tunnels: `sandbox.domain(port)`
 * reached by a plain host-side `fetch` and WebSocket through the emulator's edge, ports changed by
 * `update({ ports })`. The sandboxes' egress goes to the test internet (test/egress-internet.ts):
 * `allowed.test` and `denied.test` are servers of this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from '@vercel/sandbox';
import { serverCommand } from '../../src/testing/servers.js';
import { webSocketEcho } from '../../src/testing/ws-client.js';
import { testInternetNames } from '../egress-internet.js';
import { toEdgeUrl } from './vercel/vercel-fetch.js';
import { apiError, errorCode, needsImage, startTestEmulator, type TestEmulator } from './vercel/vercel-test-kit.js';

let kit: TestEmulator;
const allowed = testInternetNames['allowed.test']!;
const denied = testInternetNames['denied.test']!;

/** curl in the sandbox (it honours the proxy variables of an allowlist): whether the body came back. */
async function reaches(sandbox: Sandbox, url: string): Promise<boolean> {
  const result = await sandbox.runCommand('curl', ['-sS', '-k', '--fail', '--connect-timeout', '10', '--max-time', '20', url]);
  return result.exitCode === 0 && (await result.stdout()).startsWith('hello from ');
}

/** Polls until `check` holds (each poll is a real call; no timing is asserted). */
async function eventually<T>(probe: () => Promise<T>, check: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 150; attempt++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && check(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`never saw ${what}`);
}

function startServers(sandbox: Sandbox, httpPort: number, wsPort: number) {
  const [cmd, ...args] = serverCommand('python3', httpPort, wsPort);
  return sandbox.runCommand({ cmd: cmd!, args, detached: true });
}

describe.skipIf(needsImage !== '')(`Vercel emulator: network and tunnels through @vercel/sandbox${needsImage}`, () => {
  beforeAll(async () => {
    kit = await startTestEmulator({ testInternet: true });
  });
  afterAll(async () => {
    await kit?.close();
  });

  it('allows everything by default and reports allow-all', async () => {
    const sandbox = await kit.create();
    expect(sandbox.networkPolicy).toBe('allow-all');
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(true);
  }, 120_000);

  it('denies everything with deny-all', async () => {
    const sandbox = await kit.create({ networkPolicy: 'deny-all' });
    expect(sandbox.networkPolicy).toBe('deny-all');
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(false);
  }, 120_000);

  it('allows only the domains listed, and reports them', async () => {
    const sandbox = await kit.create({ networkPolicy: { allow: ['allowed.test'] } });
    expect(sandbox.networkPolicy).toEqual({ allow: ['allowed.test'] });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
    // The allowed name's own address is not on the list.
    expect(await reaches(sandbox, `https://${allowed}/`)).toBe(false);
  }, 120_000);

  it('allows subnets, and a denied subnet wins over an allowed one it covers', async () => {
    const sandbox = await kit.create({
      networkPolicy: { subnets: { allow: [`${allowed}/32`, `${denied}/32`], deny: ['198.51.100.16/28'] } },
    });
    expect(sandbox.networkPolicy).toEqual({ subnets: { allow: [`${allowed}/32`, `${denied}/32`], deny: ['198.51.100.16/28'] } });
    expect(await reaches(sandbox, `https://${allowed}/`)).toBe(true);
    expect(await reaches(sandbox, `https://${denied}/`)).toBe(false);
  }, 120_000);

  it('changes the policy of a running sandbox both ways with update and updateNetworkPolicy', async () => {
    const sandbox = await kit.create();
    await sandbox.update({ networkPolicy: 'deny-all' });
    expect(sandbox.networkPolicy).toBe('deny-all');
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(false);
    await sandbox.updateNetworkPolicy({ allow: ['allowed.test'] });
    expect(await reaches(sandbox, 'https://allowed.test/')).toBe(true);
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(false);
    await sandbox.update({ networkPolicy: 'allow-all' });
    expect(await reaches(sandbox, 'https://denied.test/')).toBe(true);
  }, 120_000);

  it('refuses per-domain rules loudly, naming the domain, instead of ignoring them', async () => {
    const error = await apiError(
      kit.create({ networkPolicy: { allow: { 'api.example.com': [{ transform: [{ headers: { authorization: 'Bearer x' } }] }] } } }),
    );
    expect(error.response.status).toBe(501);
    expect(errorCode(error)).toBe('not_implemented');
    expect(error.message).toContain('api.example.com');
  }, 60_000);

  it('serves HTTP and WebSocket of a declared port through the edge, for a plain host-side client', async () => {
    const sandbox = await kit.create({ ports: [8080, 8081] });
    expect(sandbox.domain(8080)).toMatch(/^https:\/\/sb-[a-z0-9]+\.vercel\.run$/);
    expect(() => sandbox.domain(9999)).toThrow('No route for port 9999');
    await startServers(sandbox, 8080, 8081);
    const url = toEdgeUrl(`${sandbox.domain(8080)}/ping?x=1`, kit.emulator.tunnelBaseUrl);
    const response = await eventually(
      () => fetch(url),
      (answer) => answer.status === 200,
      'the server in the sandbox',
    );
    expect(await response.text()).toBe('hello from /ping?x=1');
    // The SDK's own fetch of the domain URL goes the same way through the emulator's fetch.
    expect(await (await kit.emulator.fetch(`${sandbox.domain(8080)}/via-fetch`)).text()).toBe('hello from /via-fetch');
    expect(await webSocketEcho(toEdgeUrl(sandbox.domain(8081), kit.emulator.tunnelBaseUrl), 'through the edge')).toBe(
      'echo:through the edge',
    );
  }, 120_000);

  it('routes a port added by update({ ports }) and drops a removed one', async () => {
    const sandbox = await kit.create({ ports: [8090] });
    const removed = toEdgeUrl(sandbox.domain(8090), kit.emulator.tunnelBaseUrl);
    await sandbox.update({ ports: [8092] });
    expect(() => sandbox.domain(8090)).toThrow('No route for port 8090');
    await startServers(sandbox, 8092, 8093);
    const url = toEdgeUrl(`${sandbox.domain(8092)}/added`, kit.emulator.tunnelBaseUrl);
    const response = await eventually(
      () => fetch(url),
      (answer) => answer.status === 200,
      'the added port',
    );
    expect(await response.text()).toBe('hello from /added');
    expect((await fetch(removed)).status).toBe(404);
  }, 120_000);

  it('answers 502 when nothing listens on a routed port, and 404 once the sandbox stopped', async () => {
    const sandbox = await kit.create({ ports: [8100] });
    const url = toEdgeUrl(sandbox.domain(8100), kit.emulator.tunnelBaseUrl);
    expect((await fetch(url)).status).toBe(502);
    await sandbox.stop();
    expect((await fetch(url)).status).toBe(404);
  }, 120_000);

  it('refuses more than 15 ports at create', async () => {
    const error = await apiError(kit.create({ ports: Array.from({ length: 16 }, (_, index) => 3000 + index) }));
    expect(error.response.status).toBe(400);
    expect(error.message).toContain('at most 15 ports');
  });
});
