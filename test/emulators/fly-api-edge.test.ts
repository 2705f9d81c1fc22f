/**
 * The Fly emulator's public edge: `http://<app>.fly.localhost:<port>` stands for
 * `https://<app>.fly.dev:<port>`, routed to a machine's service (`internal_port` behind the
 * external port), with `fly-force-instance-id`, WebSocket upgrades, autostart and the proxy's own
 * 502 answers. The servers run inside the machines: bytes really cross.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installLocalhostResolution, startFlyEmulator, type FlyEmulator } from './fly/index.js';
import { flyTestClient, type FlyTestClient } from './fly/fly-test-client.js';

let emulator: FlyEmulator;
let fly: FlyTestClient;
let uninstall: () => void;

/** A server in the machine: answers who it is and what it got; echoes after a WebSocket upgrade. */
const server = `
const http = require('http');
const s = http.createServer((q, r) => {
  let body = '';
  q.on('data', (c) => (body += c));
  q.on('end', () => {
    r.setHeader('content-type', 'application/json');
    r.end(JSON.stringify({ machine: process.env.FLY_MACHINE_ID, method: q.method, url: q.url, headers: q.headers, body }));
  });
});
s.on('upgrade', (q, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n');
  sock.on('data', (d) => sock.write(d));
});
s.listen(Number(process.env.PORT), '127.0.0.1');
`;

function serverConfig(extra: Record<string, unknown> = {}) {
  return {
    image: 'node:20',
    env: { PORT: '8080' },
    init: { cmd: ['node', '-e', server] },
    services: [
      {
        protocol: 'tcp',
        internal_port: 8080,
        ports: [
          { port: 8080, handlers: ['http'] },
          { port: 443, handlers: ['tls', 'http'] },
        ],
        ...extra,
      },
      // Another external port onto the same server: the edge maps external to internal ports.
      { protocol: 'tcp', internal_port: 8080, ports: [{ port: 8081, handlers: ['http'] }], ...extra },
    ],
  };
}

/** Fetches until the server in the machine listens (the edge answers 502 before). */
async function untilServing(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, init);
    if (response.status !== 502 || attempt === 100) return response;
    await response.text();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  emulator = await startFlyEmulator();
  fly = flyTestClient(emulator.url, emulator.token);
  // What a client process does: `<app>.fly.localhost` resolves to loopback.
  uninstall = installLocalhostResolution();
});
afterAll(async () => {
  uninstall?.();
  await emulator?.close();
});

describe('edge', () => {
  it('routes <app>.<edgeDomain>:<port> to the internal_port behind that external port, with the proxy headers', async () => {
    expect(emulator.edgeDomain).toBe('fly.localhost');
    const app = await fly.app();
    const machine = await fly.machine(app, { config: serverConfig() });
    await fly.waitFor(app, machine.id, 'started');
    const response = await untilServing(`http://${app}.${emulator.edgeDomain}:8080/path?q=1`, { method: 'POST', body: 'payload' });
    expect(response.status).toBe(200);
    expect(response.headers.get('fly-request-id')).toMatch(/^[0-9a-f]+$/);
    expect(response.headers.get('via')).toBe('1.1 fly.io');
    const seen = (await response.json()) as any;
    expect(seen).toMatchObject({ machine: machine.id, method: 'POST', url: '/path?q=1', body: 'payload' });
    expect(seen.headers).toMatchObject({
      host: `${app}.${emulator.edgeDomain}:8080`,
      'fly-forwarded-port': '8080',
      'x-forwarded-proto': 'http',
    });
    const viaTls = await fetch(`http://${app}.${emulator.edgeDomain}:443/`);
    expect(((await viaTls.json()) as any).headers['fly-forwarded-port']).toBe('443');
  });

  it('honours fly-force-instance-id to pick a machine, without passing the header on', async () => {
    const app = await fly.app();
    const [a, b] = await Promise.all([fly.machine(app, { config: serverConfig() }), fly.machine(app, { config: serverConfig() })]);
    await Promise.all([fly.waitFor(app, a.id, 'started'), fly.waitFor(app, b.id, 'started')]);
    for (const target of [a, b, a]) {
      const response = await untilServing(`http://${app}.${emulator.edgeDomain}:8080/`, {
        headers: { 'fly-force-instance-id': target.id },
      });
      const seen = (await response.json()) as any;
      expect(seen.machine).toBe(target.id);
      expect(seen.headers['fly-force-instance-id']).toBeUndefined();
    }
    const unknown = await fetch(`http://${app}.${emulator.edgeDomain}:8080/`, { headers: { 'fly-force-instance-id': '00000000000000' } });
    expect(unknown.status).toBe(502);
    expect(await unknown.text()).toContain('00000000000000');
  });

  it('passes a WebSocket upgrade through to the server in the machine', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: serverConfig() });
    await fly.waitFor(app, machine.id, 'started');
    await (await untilServing(`http://${app}.${emulator.edgeDomain}:8081/`)).text();
    const [host, port] = [`${app}.${emulator.edgeDomain}`, 8081];
    const echoed = await new Promise<string>((resolve, reject) => {
      const request = httpRequest({
        host,
        port,
        path: '/socket',
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        },
      });
      request.on('upgrade', (answer, socket) => {
        expect(answer.statusCode).toBe(101);
        socket.once('data', (data: Buffer) => {
          socket.destroy();
          resolve(data.toString());
        });
        socket.write('ping through the edge');
      });
      request.on('response', (answer) => reject(new Error(`no upgrade: ${answer.statusCode}`)));
      request.on('error', reject);
      request.end();
    });
    expect(echoed).toBe('ping through the edge');
  });

  it('answers 502 when nothing listens on the internal port or the forced machine has no such service', async () => {
    const app = await fly.app();
    const silent = await fly.machine(app, {
      config: { image: 'debian', services: [{ protocol: 'tcp', internal_port: 9999, ports: [{ port: 8080, handlers: ['http'] }] }] },
    });
    const bare = await fly.machine(app, { config: { image: 'debian' } });
    await fly.waitFor(app, silent.id, 'started');
    await fly.waitFor(app, bare.id, 'started');
    const closed = await fetch(`http://${app}.${emulator.edgeDomain}:8080/`);
    expect(closed.status).toBe(502);
    expect(closed.headers.get('fly-emulator-edge')).toBe('1');
    expect(await closed.text()).toContain('internal port 9999');
    const forced = await fetch(`http://${app}.${emulator.edgeDomain}:8080/`, { headers: { 'fly-force-instance-id': bare.id } });
    expect(forced.status).toBe(502);
    expect(await forced.text()).toContain(`machine ${bare.id} of app ${app} has no service on port 8080`);
  });

  it('does not route to a stopped machine, and starts one whose service has autostart', async () => {
    const app = await fly.app();
    const manual = await fly.machine(app, { config: serverConfig(), skip_launch: true });
    const off = await fetch(`http://${app}.${emulator.edgeDomain}:8080/`);
    expect(off.status).toBe(502);
    expect((await fly.call('GET', `/v1/apps/${app}/machines/${manual.id}`)).body.state).toBe('created');

    const other = await fly.app();
    const auto = await fly.machine(other, { config: serverConfig({ autostart: true }), skip_launch: true });
    const response = await untilServing(`http://${other}.${emulator.edgeDomain}:8080/`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { machine: string }).machine).toBe(auto.id);
    expect((await fly.call('GET', `/v1/apps/${other}/machines/${auto.id}`)).body.state).toBe('started');
  });
});
