/**
 * The egress proxy through real sockets: node's HTTP client and raw sockets speak to it over
 * its unix socket (one test over TCP), and it reaches the test internet of
 * `test/egress-internet.ts` (servers this test opened on loopback) through the real policy.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingHttpHeaders, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type EgressNetwork,
  type EgressProxy,
  type EgressProxyOptions,
  SandboxEmitter,
  SandboxProviderError,
  egressProxyEnv,
  egressProxyPort,
  startEgressProxy,
} from '../../src/kit/index.js';
import type { EgressEvent } from '../../src/spec/events.js';
import { type TestInternet, startTestInternet } from '../egress-internet.js';

let internet: TestInternet;
let directory: string;
let counter = 0;
const running: EgressProxy[] = [];

beforeAll(async () => {
  internet = await startTestInternet();
  directory = await mkdtemp(join(tmpdir(), 'sandport-egress-'));
});
afterAll(async () => {
  await internet.close();
  await rm(directory, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((proxy) => proxy.close()));
});

interface Harness {
  readonly proxy: EgressProxy;
  readonly events: EgressEvent[];
  readonly resolved: string[];
  /** Resolves with the `count`-th event (1-based) once it has been emitted. */
  event(count: number): Promise<EgressEvent>;
}

async function start(
  policy: EgressProxyOptions['policy'],
  options: Partial<Pick<EgressProxyOptions, 'listen' | 'network' | 'connectTimeoutMs' | 'handshakeTimeoutMs' | 'maxConnections'>> = {},
): Promise<Harness> {
  const emitter = new SandboxEmitter();
  const events: EgressEvent[] = [];
  const waiting: Array<{ count: number; resolve: (event: EgressEvent) => void }> = [];
  emitter.on('egress', (event) => {
    events.push(event);
    for (const waiter of waiting.filter((entry) => entry.count === events.length)) waiter.resolve(event);
  });
  const resolved: string[] = [];
  const base = options.network ?? internet;
  const network: EgressNetwork = {
    resolve: (name, signal) => {
      resolved.push(name);
      return base.resolve(name, signal);
    },
    dial: (address, port, signal) => base.dial(address, port, signal),
  };
  counter += 1;
  const proxy = await startEgressProxy({
    provider: 'test',
    sandboxId: `sandbox-${counter}`,
    policy,
    listen: options.listen ?? { path: join(directory, `proxy-${counter}.sock`) },
    events: emitter,
    network,
    connectTimeoutMs: options.connectTimeoutMs,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    maxConnections: options.maxConnections,
  });
  running.push(proxy);
  const event = (count: number): Promise<EgressEvent> => {
    const existing = events[count - 1];
    if (existing !== undefined) return Promise.resolve(existing);
    return new Promise((resolve) => waiting.push({ count, resolve }));
  };
  return { proxy, events, resolved, event };
}

const allowlist = (allowDomains: string[], allowCidrs: string[] = []) => ({ allowDomains, allowCidrs });

function socketTo(proxy: EgressProxy): Socket {
  const listen = proxy.listen;
  return 'path' in listen ? connect(listen.path) : connect(listen.port, listen.host);
}

interface Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

async function readResponse(req: ReturnType<typeof request>): Promise<Response> {
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  let body = '';
  for await (const chunk of res) body += chunk;
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}

/** A plain HTTP request through the proxy, in absolute form. */
function viaProxy(proxy: EgressProxy, url: string, headers: Record<string, string> = {}): Promise<Response> {
  const req = request({
    createConnection: () => socketTo(proxy),
    path: url,
    headers: { host: URL.canParse(url) ? new URL(url).host : 'proxy', ...headers },
  });
  req.end();
  return readResponse(req);
}

/** Sends a CONNECT and reads the proxy's answer head; the socket is the tunnel when the status is 200. */
async function connectThrough(proxy: EgressProxy, authority: string): Promise<{ status: number; head: string; socket: Socket }> {
  const socket = socketTo(proxy);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  let received = Buffer.alloc(0);
  while (!received.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received = Buffer.concat([received, chunk]);
  }
  const end = received.indexOf('\r\n\r\n') + 4;
  let head = received.subarray(0, end).toString();
  if (!head.startsWith('HTTP/1.1 200')) {
    // A refusal: read its body to the end too.
    socket.resume();
    const rest: Buffer[] = [received.subarray(end)];
    socket.on('data', (chunk: Buffer) => rest.push(chunk));
    await once(socket, 'close');
    head += Buffer.concat(rest).toString();
  } else if (end < received.length) {
    socket.unshift(received.subarray(end));
  }
  return { status: Number(head.slice(9, 12)), head, socket };
}

/** TLS over a tunnel, then `GET path`. */
async function httpsOver(socket: Socket, servername: string, path = '/'): Promise<Response> {
  const tls: TLSSocket = tlsConnect({ socket, servername, ca: internet.certificate });
  const req = request({ createConnection: () => tls, path, headers: { host: servername, connection: 'close' } });
  req.end();
  return readResponse(req);
}

/** Writes `data` into a tunnel to an echo server, half-closes, and reads everything back. */
async function echoOver(socket: Socket, data: string): Promise<string> {
  socket.end(data);
  let back = '';
  for await (const chunk of socket) back += chunk;
  return back;
}

/** A SOCKS5 CONNECT: the reply code, and the socket (the tunnel when the code is 0). */
async function socks5(
  proxy: EgressProxy,
  destination: { domain: string } | { ipv4: string } | { ipv6: Buffer },
  port: number,
  options: { command?: number; methods?: number[] } = {},
): Promise<{ code: number; socket: Socket }> {
  const socket = socketTo(proxy);
  const reader = bytesOf(socket);
  const methods = options.methods ?? [0x00];
  socket.write(Buffer.from([0x05, methods.length, ...methods]));
  const choice = await reader(2);
  if (choice[1] !== 0x00) return { code: 0x100 + (choice[1] ?? 0), socket };
  let address: Buffer;
  if ('domain' in destination) address = Buffer.from([0x03, destination.domain.length, ...Buffer.from(destination.domain)]);
  else if ('ipv4' in destination) address = Buffer.from([0x01, ...destination.ipv4.split('.').map(Number)]);
  else address = Buffer.from([0x04, ...destination.ipv6]);
  socket.write(Buffer.concat([Buffer.from([0x05, options.command ?? 0x01, 0x00]), address, Buffer.from([port >> 8, port & 0xff])]));
  const reply = await reader(10);
  reader.release();
  return { code: reply[1] ?? -1, socket };
}

/** Reads exact byte counts off a socket, then hands the rest back to it. */
function bytesOf(socket: Socket) {
  let buffered = Buffer.alloc(0);
  let wanted: { count: number; resolve: (bytes: Buffer) => void } | undefined;
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    deliver();
  };
  const deliver = (): void => {
    if (wanted !== undefined && buffered.length >= wanted.count) {
      const { count, resolve } = wanted;
      wanted = undefined;
      const bytes = buffered.subarray(0, count);
      buffered = buffered.subarray(count);
      resolve(bytes);
    }
  };
  socket.on('data', onData);
  const read = (count: number): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      wanted = { count, resolve };
      socket.once('close', () => reject(new Error(`the proxy closed after ${buffered.length} bytes`)));
      deliver();
    });
  read.release = (): void => {
    socket.off('data', onData);
    socket.pause();
    if (buffered.length > 0) socket.unshift(buffered);
  };
  return read;
}

const ipv6Bytes = (groups: number[]): Buffer => Buffer.from(groups.flatMap((group) => [group >> 8, group & 0xff]));

describe('egress proxy: plain HTTP', () => {
  it('forwards an allowed request and reports it when it closes, with its bytes', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const response = await viaProxy(proxy, 'http://allowed.test/');
    expect(response).toMatchObject({ status: 200, body: 'hello from 198.51.100.10' });
    const reported = await event(1);
    expect(reported).toMatchObject({
      provider: 'test',
      decision: 'allowed',
      host: 'allowed.test',
      port: 80,
      address: '198.51.100.10',
      protocol: 'http',
      reason: undefined,
    });
    expect(reported.bytesSent).toBeGreaterThan(0);
    expect(reported.bytesReceived).toBeGreaterThan('hello from 198.51.100.10'.length);
  });

  it('refuses a name not in allowDomains with 403, the header and the reason, without resolving it', async () => {
    const { proxy, event, resolved } = await start(allowlist(['allowed.test']));
    const response = await viaProxy(proxy, 'http://denied.test/');
    expect(response.status).toBe(403);
    expect(response.headers['x-sandport-egress']).toBe('denied');
    expect(response.body).toContain('denied.test is not in allowDomains');
    expect(await event(1)).toMatchObject({ decision: 'denied', host: 'denied.test', port: 80, bytesSent: 0, durationMs: 0 });
    expect(resolved).not.toContain('denied.test');
  });

  it('passes a redirect to a denied host back unfollowed, and refuses the follow-up request', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const redirect = await viaProxy(proxy, 'http://allowed.test/redirect?to=http://denied.test/secret');
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe('http://denied.test/secret');
    const followUp = await viaProxy(proxy, redirect.headers.location ?? '');
    expect(followUp.status).toBe(403);
    expect((await event(2)).decision).toBe('denied');
    expect(internet.dialed.some((dial) => dial.address === internet.names['denied.test'])).toBe(false);
  });

  it('names upstream failures: 502 for a refused connection and for a name that does not resolve', async () => {
    const { proxy } = await start(allowlist(['allowed.test', 'nowhere.test']));
    const refused = await viaProxy(proxy, 'http://allowed.test:81/');
    expect(refused.status).toBe(502);
    expect(refused.headers['x-sandport-egress']).toBe('error');
    expect(refused.body).toContain('ECONNREFUSED');
    const missing = await viaProxy(proxy, 'http://nowhere.test/');
    expect(missing.status).toBe(502);
    expect(missing.body).toContain('ENOTFOUND');
  });

  it('answers 400 to origin-form requests and to https: URLs (those go through CONNECT)', async () => {
    const { proxy } = await start(allowlist(['allowed.test']));
    const origin = await viaProxy(proxy, '/');
    expect(origin.status).toBe(400);
    expect(origin.body).toContain('absolute-form');
    const https = await viaProxy(proxy, 'https://allowed.test/');
    expect(https.status).toBe(400);
    expect(https.body).toContain('CONNECT');
  });

  it('refuses special addresses in URLs, however they are spelt', async () => {
    const { proxy } = await start(allowlist(['allowed.test']));
    for (const url of ['http://127.0.0.1/', 'http://[::1]/', 'http://[::ffff:127.0.0.1]/', 'http://2130706433/', 'http://0x7f.1/']) {
      const response = await viaProxy(proxy, url);
      expect(response.status, url).toBe(403);
      expect(response.body, url).toContain('loopback');
    }
    expect(internet.dialed.some((dial) => dial.address === '127.0.0.1')).toBe(false);
  });
});

describe('egress proxy: CONNECT', () => {
  it('tunnels TLS to an allowed name and reports the bytes on close', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { status, socket } = await connectThrough(proxy, 'allowed.test:443');
    expect(status).toBe(200);
    const response = await httpsOver(socket, 'allowed.test');
    expect(response).toMatchObject({ status: 200, body: 'hello from 198.51.100.10' });
    expect(response.headers['x-test-sni']).toBe('allowed.test');
    const reported = await event(1);
    expect(reported).toMatchObject({ decision: 'allowed', host: 'allowed.test', port: 443, protocol: 'connect', address: '198.51.100.10' });
    // A TLS handshake alone is more than a kilobyte each way.
    expect(reported.bytesSent).toBeGreaterThan(200);
    expect(reported.bytesReceived).toBeGreaterThan(1000);
  });

  it('refuses a tunnel whose ClientHello names another host (SNI), with one denied event', async () => {
    const { proxy, events, event } = await start(allowlist(['allowed.test']));
    const { status, socket } = await connectThrough(proxy, 'allowed.test:443');
    expect(status).toBe(200);
    await expect(httpsOver(socket, 'denied.test')).rejects.toThrow();
    const reported = await event(1);
    expect(reported).toMatchObject({ decision: 'denied', host: 'allowed.test', port: 443, protocol: 'connect', bytesSent: 0 });
    expect(reported.reason).toContain('SNI');
    await proxy.close();
    expect(events).toHaveLength(1);
  });

  it('lets the SNI name another host when that host is itself allowed', async () => {
    const { proxy } = await start(allowlist(['allowed.test', 'other.allowed.test']));
    const { socket } = await connectThrough(proxy, 'allowed.test:443');
    const response = await httpsOver(socket, 'other.allowed.test');
    expect(response.headers['x-test-sni']).toBe('other.allowed.test');
  });

  it('passes bytes that are not TLS, with half-close', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { socket } = await connectThrough(proxy, 'allowed.test:7');
    expect(await echoOver(socket, 'ping through the tunnel')).toBe('ping through the tunnel');
    expect(await event(1)).toMatchObject({ decision: 'allowed', bytesSent: 23, bytesReceived: 23 });
  });

  it('refuses a raw IP not in allowCidrs, and allows one inside', async () => {
    const closed = await start(allowlist(['allowed.test']));
    const refused = await connectThrough(closed.proxy, '198.51.100.20:7');
    expect(refused.status).toBe(403);
    expect(refused.head).toContain('x-sandport-egress: denied');
    expect(refused.head).toContain('198.51.100.20 is not inside allowCidrs');

    const open = await start(allowlist([], ['198.51.100.20/32']));
    const allowed = await connectThrough(open.proxy, '198.51.100.20:7');
    expect(allowed.status).toBe(200);
    expect(await echoOver(allowed.socket, 'raw')).toBe('raw');
  });

  it('allows a name outside allowDomains only when it resolves inside allowCidrs', async () => {
    const { proxy } = await start(allowlist([], ['198.51.100.10/32']));
    expect((await connectThrough(proxy, 'allowed.test:7')).status).toBe(200);
    const denied = await connectThrough(proxy, 'denied.test:7');
    expect(denied.status).toBe(403);
    expect(denied.head).toContain('denied.test is not in allowDomains and resolves to 198.51.100.20 is not inside allowCidrs');
  });

  it.each([
    ['[::1]:80', 'loopback'],
    ['[::ffff:127.0.0.1]:80', 'loopback'],
    ['127.0.0.1:80', 'loopback'],
    ['2130706433:80', 'loopback'],
    ['0177.0.0.1:80', 'loopback'],
    ['169.254.169.254:80', 'cloud metadata'],
    ['[fe80::1]:80', 'link-local'],
    ['[2001:db8::10]:7', 'IPv6'],
    ['0.0.0.0:80', 'unspecified'],
    ['rebind.test:80', 'loopback'],
    ['metadata.test:80', 'cloud metadata'],
    ['v6.test:7', 'IPv6'],
  ])('refuses CONNECT %s (%s), even when its name is allowed', async (authority, what) => {
    const { proxy, event } = await start(allowlist(['allowed.test', 'rebind.test', 'metadata.test', 'v6.test']));
    const before = internet.dialed.length;
    const { status, head } = await connectThrough(proxy, authority);
    expect(status).toBe(403);
    expect(head).toContain(what);
    expect((await event(1)).decision).toBe('denied');
    expect(internet.dialed.length).toBe(before);
  });

  it('reaches IPv6 and loopback only when allowCidrs lists them', async () => {
    const { proxy } = await start(allowlist(['v6.test', 'rebind.test'], ['2001:db8::/32', '127.0.0.1/32']));
    const v6 = await connectThrough(proxy, '[2001:db8::10]:7');
    expect(v6.status).toBe(200);
    expect(await echoOver(v6.socket, 'six')).toBe('six');
    const named = await connectThrough(proxy, 'v6.test:7');
    expect(await echoOver(named.socket, 'named six')).toBe('named six');
    const loopback = await connectThrough(proxy, 'rebind.test:7');
    expect(await echoOver(loopback.socket, 'listed')).toBe('listed');
  });

  it('answers 502 naming ECONNREFUSED and ENOTFOUND, and 400 to a malformed authority', async () => {
    const { proxy } = await start(allowlist(['allowed.test', 'nowhere.test']));
    const refused = await connectThrough(proxy, 'allowed.test:81');
    expect(refused.status).toBe(502);
    expect(refused.head).toContain('ECONNREFUSED');
    const missing = await connectThrough(proxy, 'nowhere.test:443');
    expect(missing.status).toBe(502);
    expect(missing.head).toContain('ENOTFOUND');
    expect((await connectThrough(proxy, 'allowed.test')).status).toBe(400);
    expect((await connectThrough(proxy, 'allowed.test:70000')).status).toBe(400);
  });

  it('carries a large download with its length intact', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { socket } = await connectThrough(proxy, 'allowed.test:443');
    const size = 8 * 1024 * 1024;
    const response = await httpsOver(socket, 'allowed.test', `/bytes?n=${size}`);
    expect(response.body.length).toBe(size);
    expect((await event(1)).bytesReceived).toBeGreaterThan(size);
  });

  it('holds back a download the client does not read (backpressure, no unbounded buffering)', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { socket } = await connectThrough(proxy, 'allowed.test:80');
    const size = 512 * 1024 * 1024;
    socket.write(`GET /bytes?n=${size} HTTP/1.1\r\nHost: allowed.test\r\n\r\n`);
    socket.pause();
    // Give the proxy the chance to pull everything, were it to buffer; then look at what it pulled.
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.destroy();
    const reported = await event(1);
    expect(reported.bytesReceived).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('egress proxy: SOCKS5', () => {
  it('tunnels to an allowed domain, and reports the connection as socks5', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { code, socket } = await socks5(proxy, { domain: 'allowed.test' }, 7);
    expect(code).toBe(0x00);
    expect(await echoOver(socket, 'socks echo')).toBe('socks echo');
    expect(await event(1)).toMatchObject({ decision: 'allowed', protocol: 'socks5', host: 'allowed.test', port: 7, bytesSent: 10 });
  });

  it('checks SNI in SOCKS5 tunnels too', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const allowed = await socks5(proxy, { domain: 'allowed.test' }, 443);
    expect((await httpsOver(allowed.socket, 'allowed.test')).status).toBe(200);
    const mismatched = await socks5(proxy, { domain: 'allowed.test' }, 443);
    await expect(httpsOver(mismatched.socket, 'denied.test')).rejects.toThrow();
    expect((await event(2)).reason).toContain('SNI');
  });

  it.each([
    ['a denied domain', { domain: 'denied.test' }, 7, 0x02],
    ['an IPv4 address outside allowCidrs', { ipv4: '198.51.100.20' }, 7, 0x02],
    ['the metadata address', { ipv4: '169.254.169.254' }, 80, 0x02],
    ['IPv6 loopback', { ipv6: ipv6Bytes([0, 0, 0, 0, 0, 0, 0, 1]) }, 80, 0x02],
    ['IPv4-mapped loopback', { ipv6: ipv6Bytes([0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001]) }, 80, 0x02],
    ['a name that rebinds to loopback', { domain: 'rebind.test' }, 80, 0x02],
    ['a domain spelling loopback in decimal', { domain: '2130706433' }, 80, 0x02],
    ['an allowed name that does not resolve', { domain: 'nowhere.test' }, 80, 0x04],
    ['a refused connection', { domain: 'allowed.test' }, 81, 0x05],
  ] as const)('replies to %s with its code', async (_what, destination, port, expected) => {
    const { proxy, event } = await start(allowlist(['allowed.test', 'rebind.test', 'nowhere.test']));
    const { code } = await socks5(proxy, destination, port);
    expect(code).toBe(expected);
    // Refused by the policy is `denied`; allowed but unreachable (not resolving, refused) is `failed`.
    expect(await event(1)).toMatchObject({ decision: expected === 0x02 ? 'denied' : 'failed', protocol: 'socks5', port });
  });

  it('refuses BIND, UDP ASSOCIATE, authentication-only clients and SOCKS4', async () => {
    const { proxy, events } = await start(allowlist(['allowed.test']));
    expect((await socks5(proxy, { domain: 'allowed.test' }, 7, { command: 0x02 })).code).toBe(0x07);
    expect((await socks5(proxy, { domain: 'allowed.test' }, 7, { command: 0x03 })).code).toBe(0x07);
    // 0x1FF: the method choice 0xFF, "no acceptable methods".
    expect((await socks5(proxy, { domain: 'allowed.test' }, 7, { methods: [0x02] })).code).toBe(0x1ff);
    const socks4 = socketTo(proxy);
    socks4.write(Buffer.from([0x04, 0x01, 0x00, 0x07, 198, 51, 100, 10, 0x00]));
    const [reply] = (await once(socks4, 'data')) as [Buffer];
    expect(reply[1]).toBe(0x5b);
    expect(events).toEqual([]);
  });
});

describe('egress proxy: lifecycle', () => {
  it('listens on TCP too, reporting the port the system chose', async () => {
    const { proxy } = await start(allowlist(['allowed.test']), { listen: { host: '127.0.0.1', port: 0 } });
    expect(proxy.listen).toMatchObject({ host: '127.0.0.1' });
    expect('port' in proxy.listen && proxy.listen.port).toBeGreaterThan(0);
    expect((await viaProxy(proxy, 'http://allowed.test/')).status).toBe(200);
  });

  it('applies setPolicy to the connections opened after it', async () => {
    const { proxy } = await start(allowlist(['allowed.test']));
    const before = await connectThrough(proxy, 'allowed.test:7');
    expect(before.status).toBe(200);
    proxy.setPolicy('block');
    expect((await viaProxy(proxy, 'http://allowed.test/')).status).toBe(403);
    // The tunnel opened before the change stays open.
    expect(await echoOver(before.socket, 'still here')).toBe('still here');
    proxy.setPolicy(allowlist(['denied.test']));
    expect((await viaProxy(proxy, 'http://denied.test/')).body).toBe('hello from 198.51.100.20');
    expect((await viaProxy(proxy, 'http://allowed.test/')).status).toBe(403);
  });

  it('close() destroys open tunnels, stops listening, and is idempotent', async () => {
    const { proxy, event } = await start(allowlist(['allowed.test']));
    const { socket } = await connectThrough(proxy, 'allowed.test:7');
    const closed = once(socket, 'close');
    await Promise.all([proxy.close(), proxy.close()]);
    await closed;
    expect((await event(1)).decision).toBe('allowed');
    const late = socketTo(proxy);
    const [error] = (await once(late, 'error')) as [NodeJS.ErrnoException];
    expect(['ENOENT', 'ECONNREFUSED']).toContain(error.code);
  });

  it('refuses a destination that does not answer within the connect timeout', async () => {
    const silent: EgressNetwork = {
      resolve: (_name, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      dial: (address, port, signal) => internet.dial(address, port, signal),
    };
    const { proxy, event } = await start(allowlist(['allowed.test']), { network: silent, connectTimeoutMs: 50 });
    const response = await viaProxy(proxy, 'http://allowed.test/');
    expect(response.status).toBe(504);
    expect(response.body).toContain('no answer within 50 ms');
    expect((await event(1)).decision).toBe('failed');
    const { code } = await socks5(proxy, { domain: 'allowed.test' }, 80);
    expect(code).toBe(0x06);
  });

  it('drops a client that sends half a request head and stalls, or half a SOCKS5 handshake, or nothing', async () => {
    const { proxy, events } = await start(allowlist(['allowed.test']), { handshakeTimeoutMs: 100 });
    const stalled = [
      'CONNECT allowed.te',
      'GET http://allowed.test/ HTTP/1.1\r\nHost: allowed',
      Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01]),
      '',
    ].map((partial) => {
      const socket = socketTo(proxy);
      socket.on('error', () => {});
      socket.write(partial);
      socket.resume();
      return once(socket, 'close');
    });
    await Promise.all(stalled);
    expect(events).toEqual([]);
  });

  it('closes connections beyond maxConnections at once', async () => {
    const { proxy } = await start(allowlist(['allowed.test']), { maxConnections: 2 });
    const first = await connectThrough(proxy, 'allowed.test:7');
    const second = await connectThrough(proxy, 'allowed.test:7');
    const third = socketTo(proxy);
    third.on('error', () => {});
    third.resume();
    await once(third, 'close');
    expect(await echoOver(first.socket, 'one')).toBe('one');
    expect(await echoOver(second.socket, 'two')).toBe('two');
  });

  it('rejects with SandboxProviderError when it cannot listen, naming where', async () => {
    const { proxy } = await start(allowlist([]));
    const path = 'path' in proxy.listen ? proxy.listen.path : '';
    const attempt = startEgressProxy({
      provider: 'test',
      sandboxId: 'twin',
      policy: 'block',
      listen: { path },
      events: new SandboxEmitter(),
    });
    await expect(attempt).rejects.toBeInstanceOf(SandboxProviderError);
    await expect(attempt).rejects.toThrow(path);
  });

  it('keeps serving when an egress listener throws', async () => {
    const emitter = new SandboxEmitter();
    emitter.on('egress', () => {
      throw new Error('a listener bug');
    });
    const proxy = await startEgressProxy({
      provider: 'test',
      sandboxId: 'throwing',
      policy: allowlist(['allowed.test']),
      listen: { path: join(directory, 'throwing.sock') },
      events: emitter,
      network: internet,
    });
    running.push(proxy);
    expect((await viaProxy(proxy, 'http://denied.test/')).status).toBe(403);
    expect((await viaProxy(proxy, 'http://allowed.test/')).status).toBe(200);
  });

  it('answers bytes that are neither HTTP nor SOCKS with a refusal', async () => {
    const { proxy } = await start(allowlist(['allowed.test']));
    const socket = socketTo(proxy);
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00]));
    let text = '';
    for await (const chunk of socket) text += chunk;
    expect(text).toContain('speak HTTP proxy');
  });
});

describe('egressProxyEnv', () => {
  it('points HTTP, HTTPS and SOCKS (with remote names) at the bridge, in both cases, and exempts loopback', () => {
    const env = egressProxyEnv();
    expect(env).toMatchObject({
      HTTP_PROXY: `http://127.0.0.1:${egressProxyPort}`,
      https_proxy: `http://127.0.0.1:${egressProxyPort}`,
      ALL_PROXY: `socks5h://127.0.0.1:${egressProxyPort}`,
      no_proxy: 'localhost,127.0.0.1,::1',
    });
    expect(egressProxyEnv(9000).http_proxy).toBe('http://127.0.0.1:9000');
  });
});
