/**
 * The emulator's edge: what `https://<subdomain>.vercel.run` (the SDK's `sandbox.domain(port)`)
 * stands for. One HTTP server on 127.0.0.1 routes by the Host header
 * `<subdomain>.vercel.localhost:<edgePort>` to the session and port the subdomain was given to,
 * and relays the request (WebSocket upgrades too) into the local sandbox:
 * - a port declared at create goes through the local sandbox's own published port (its tunnel);
 * - a port added later by `update({ ports })` goes through a relay exec in the sandbox
 *   (`socat - TCP:127.0.0.1:<port>`), as the local sandbox publishes ports at create only.
 * The tunnel base is `http://vercel.localhost:<edgePort>` (`tunnelBaseUrl`): the emulator has no
 * TLS terminator, so the scheme is http, and `*.localhost` needs `installLocalhostResolution()`
 * in the client's process (../shared/localhost-resolution.ts). Answers of its own, JSON
 * `{ error: { code, message } }`: 404 for a subdomain that is not a route of a running session,
 * 502 when nothing listens on the port.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { installLocalhostResolution } from '../shared/localhost-resolution.js';
import type { VercelSession, VercelState } from './vercel-state.js';

/** The host part of the tunnel base. */
export const edgeHostSuffix = 'vercel.localhost';

export interface Edge {
  readonly port: number;
  /** `http://vercel.localhost:<port>`. */
  readonly tunnelBaseUrl: string;
  /** Starts routing to `state`'s sessions (requests before this are 404). */
  serve(state: VercelState): void;
  close(): Promise<void>;
}

interface Target {
  session: VercelSession;
  port: number;
}

function parseSubdomain(host: string | undefined): string | undefined {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  const suffix = `.${edgeHostSuffix}`;
  return name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
}

function resolveTarget(state: VercelState | undefined, req: IncomingMessage): Target | { status: number; message: string } {
  const subdomain = parseSubdomain(req.headers.host);
  if (!subdomain) return { status: 400, message: `Host "${req.headers.host ?? ''}" is not <subdomain>.${edgeHostSuffix}` };
  const route = state?.subdomains.get(subdomain);
  if (route?.session.status !== 'running' || !route.session.entry || route.session.entry.end) {
    return { status: 404, message: `No running sandbox serves ${subdomain}.vercel.run` };
  }
  return route;
}

const relayScript = [
  'if command -v socat >/dev/null 2>&1; then exec socat - "TCP:127.0.0.1:$1"; fi',
  'echo "the Vercel emulator relays ports added after create with socat, which the sandbox lacks" >&2; exit 127',
].join('\n');

/** A connection to the port in the sandbox. */
async function openUpstream(target: Target): Promise<Duplex> {
  const local = target.session.entry!.local;
  const published = (await local.tunnels().catch(() => ({}) as Record<number, { hostPort?: number }>))[target.port];
  if (published?.hostPort) {
    const socket = connect(published.hostPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }
  const process = await local.exec(['/bin/sh', '-c', relayScript, 'relay', String(target.port)], { cwd: '/' });
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
  const stream = Duplex.fromWeb({ readable: process.stdout, writable: process.stdin });
  stream.on('close', () => void process.kill().catch(() => undefined));
  return stream;
}

function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify({ error: { code: status === 404 ? 'not_found' : 'bad_gateway', message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function forward(state: VercelState | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = resolveTarget(state, req);
  if ('status' in target) {
    req.resume();
    return refuse(res, target.status, target.message);
  }
  let upstream: Duplex;
  try {
    upstream = await openUpstream(target);
  } catch (error) {
    req.resume();
    return refuse(res, 502, `Nothing answers on port ${target.port} of session ${target.session.id}: ${String(error)}`);
  }
  upstream.on('error', () => undefined);
  const outgoing = httpRequest({
    method: req.method,
    path: req.url ?? '/',
    headers: req.headers,
    createConnection: () => upstream as unknown as Socket,
  });
  outgoing.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  outgoing.on('error', (error) => {
    upstream.destroy();
    refuse(res, 502, `Port ${target.port} of session ${target.session.id} did not answer: ${error.message}`);
  });
  res.on('close', () => upstream.destroy());
  req.pipe(outgoing);
}

async function upgrade(state: VercelState | undefined, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const target = resolveTarget(state, req);
  const refuseUpgrade = (status: number, message: string) => {
    const text = JSON.stringify({ error: { code: status === 404 ? 'not_found' : 'bad_gateway', message } });
    socket.end(
      `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 400 ? 'Bad Request' : 'Bad Gateway'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  };
  if ('status' in target) return refuseUpgrade(target.status, target.message);
  const upstream = await openUpstream(target).catch(() => undefined);
  if (!upstream) return refuseUpgrade(502, `Nothing answers on port ${target.port} of session ${target.session.id}`);
  upstream.on('error', () => undefined);
  const lines = [`${req.method} ${req.url ?? '/'} HTTP/1.1`];
  for (let index = 0; index < req.rawHeaders.length; index += 2) lines.push(`${req.rawHeaders[index]}: ${req.rawHeaders[index + 1]}`);
  upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  upstream.pipe(socket).pipe(upstream);
  const close = () => {
    upstream.destroy();
    socket.destroy();
  };
  upstream.on('close', close);
  socket.on('close', close);
}

/** Starts the edge on 127.0.0.1 and the `*.localhost` resolution hook (both go on `close`). */
export async function startEdge(): Promise<Edge> {
  let state: VercelState | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    forward(state, req, res).catch((error: unknown) => refuse(res, 502, String(error)));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgrade(state, req, socket, head).catch(() => socket.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ready, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => ready());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const uninstall = installLocalhostResolution();
  return {
    port,
    tunnelBaseUrl: `http://${edgeHostSuffix}:${port}`,
    serve(served) {
      state = served;
    },
    async close() {
      uninstall();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
