/**
 * A pretend internet for egress tests: an `EgressNetwork` whose names resolve to documentation
 * addresses (TEST-NET, RFC 5737) and whose dials land on servers this module opened on
 * 127.0.0.1 port 0. The proxy under test runs its real policy code, and nothing is ever sent to
 * the documentation addresses themselves, nor to any port the test did not open.
 */
import { once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, type Socket, connect, createServer as createNetServer, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import type { EgressNetwork } from '../src/kit/egress-network.js';

export interface TestInternet extends EgressNetwork {
  /** 'allowed.test' → '198.51.100.10', 'denied.test' → '198.51.100.20', 'other.allowed.test' → '198.51.100.11',
   *  'rebind.test' → '127.0.0.1', 'metadata.test' → '169.254.169.254', 'v6.test' → '2001:db8::10';
   *  unknown names reject (ENOTFOUND). */
  readonly names: Readonly<Record<string, string>>;
  /** Each address above serves: port 80 plain HTTP (GET / → 200 body `hello from <address>`;
   *  GET /redirect?to=<url> → 302 Location <url>; GET /bytes?n=N → N bytes), port 443 TLS (self-signed,
   *  same routes, plus a response header `x-test-sni` with the SNI the server got), port 7 a TCP echo.
   *  Dials to any other address/port reject with ECONNREFUSED. Every dial is recorded here, refused or not. */
  readonly dialed: ReadonlyArray<{ address: string; port: number }>;
  /** The PEM certificate the TLS servers present (self-signed; its SANs are every name and address above). */
  readonly certificate: string;
  close(): Promise<void>;
}

/**
 * One more host of the test internet, for a server a test opened itself (plain data, so it can
 * cross to a spawned emulator): its name resolves to `address`, and a dial of `address` at a
 * key of `ports` lands on 127.0.0.1 at that key's value. How an emulated cloud sandbox reaches a
 * service "on the internet" (the credential proxy's public URL) without leaving loopback.
 */
export interface TestInternetHost {
  /** A documentation address not used above (TEST-NET-3, 203.0.113.0/24, is free for these). */
  readonly address: string;
  /** Port in the test internet → port on 127.0.0.1 that the test opened. */
  readonly ports: Readonly<Record<number, number>>;
}

/** Options of `startTestInternet`. */
export interface TestInternetOptions {
  /** Extra hosts by name (`{ 'proxy.test': { address: '203.0.113.10', ports: { 80: 41234 } } }`). */
  readonly hosts?: Readonly<Record<string, TestInternetHost>>;
}

/** The names and the address each resolves to. */
export const testInternetNames: Readonly<Record<string, string>> = Object.freeze({
  'allowed.test': '198.51.100.10',
  'other.allowed.test': '198.51.100.11',
  'denied.test': '198.51.100.20',
  'rebind.test': '127.0.0.1',
  'metadata.test': '169.254.169.254',
  'v6.test': '2001:db8::10',
});

/** The largest `/bytes?n=` served, so a typo cannot make a test stream forever. */
const maxBytes = 2 ** 30;
const chunk = Buffer.alloc(64 * 1024, 0x61);

/** A DNS-style error with the `code` a real resolver or connect would carry. */
function codedError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

function handler(address: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const servername = (req.socket as Partial<TLSSocket>).servername;
    if (typeof servername === 'string') res.setHeader('x-test-sni', servername);
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${address}`);
    } else if (url.pathname === '/redirect') {
      res.writeHead(302, { location: url.searchParams.get('to') ?? '/' }).end();
    } else if (url.pathname === '/bytes') {
      const n = Math.min(Number(url.searchParams.get('n') ?? 0) || 0, maxBytes);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
      streamBytes(res, n);
    } else {
      res.writeHead(404).end('not found');
    }
  };
}

/** Writes `n` bytes with backpressure. */
function streamBytes(res: ServerResponse, n: number): void {
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

async function listen(server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Starts the servers (three per address) and returns the network that reaches them. */
export async function startTestInternet(options: TestInternetOptions = {}): Promise<TestInternet> {
  const hosts = Object.entries(options.hosts ?? {});
  const names: Readonly<Record<string, string>> = Object.freeze({
    ...testInternetNames,
    ...Object.fromEntries(hosts.map(([name, host]) => [name.toLowerCase(), host.address])),
  });
  const addresses = [...new Set(Object.values(testInternetNames))];
  const hostAddresses = hosts.map(([, host]) => host.address);
  const pems = await generate([{ name: 'commonName', value: 'sandport test internet' }], {
    notAfterDate: new Date(Date.now() + 2 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...Object.keys(names).map((value) => ({ type: 2 as const, value })),
          ...[...addresses, ...hostAddresses].map((ip) => ({ type: 7 as const, ip })),
        ],
      },
    ],
  });
  const sockets = new Set<Socket>();
  const servers: Array<Server | ReturnType<typeof createNetServer>> = [];
  // address → port → the loopback port that serves it.
  const routes = new Map<string, Map<number, number>>();
  for (const address of addresses) {
    const http = createHttpServer(handler(address));
    const https = createHttpsServer({ key: pems.private, cert: pems.cert }, handler(address));
    const echo = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.pipe(socket);
    });
    servers.push(http, https, echo);
    routes.set(
      address,
      new Map([
        [80, await listen(http)],
        [443, await listen(https)],
        [7, await listen(echo)],
      ]),
    );
  }
  for (const [name, host] of hosts) {
    if (routes.has(canonical(host.address))) throw new Error(`test internet host ${name}: address ${host.address} is taken`);
    routes.set(canonical(host.address), new Map(Object.entries(host.ports).map(([port, target]) => [Number(port), target])));
  }
  const dialed: Array<{ address: string; port: number }> = [];
  let closed = false;

  const resolve = async (hostname: string, signal: AbortSignal): Promise<string[]> => {
    signal.throwIfAborted();
    const address = names[hostname.toLowerCase().replace(/\.$/, '')];
    if (address === undefined) throw codedError('ENOTFOUND', `${hostname} does not resolve in the test internet`);
    return [address];
  };

  const dial = (address: string, port: number, signal: AbortSignal): Promise<Socket> => {
    signal.throwIfAborted();
    dialed.push({ address, port });
    const target = isIP(address) === 0 || closed ? undefined : routes.get(canonical(address))?.get(port);
    if (target === undefined) {
      return Promise.reject(codedError('ECONNREFUSED', `nothing listens on ${address} port ${port} in the test internet`));
    }
    return new Promise((resolvePromise, reject) => {
      const socket = connect({ host: '127.0.0.1', port: target });
      const onAbort = (): void => {
        socket.destroy();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(socket);
      });
      socket.once('error', (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      });
    });
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const socket of sockets) socket.destroy();
    await Promise.all(
      servers.map(async (server) => {
        const done = new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
        if ('closeAllConnections' in server) server.closeAllConnections();
        await done;
      }),
    );
  };

  return { names, dialed, certificate: pems.cert, resolve, dial, close };
}

/** The spelling the routes are keyed by (IPv6 text has several). */
function canonical(address: string): string {
  if (isIP(address) !== 6) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}
