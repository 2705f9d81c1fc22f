/**
 * Tunnels: `POST`/`DELETE /v1/sandbox/:id/tunnel/:port` (cloudflare-bridge.md §1.6), and the edge
 * that makes the URLs they answer reachable from this machine.
 *
 * On Cloudflare a quick tunnel is `https://<words>.trycloudflare.com`, served by `cloudflared` in
 * the container. Here the URL is `http://<words>.trycloudflare.localhost:<edgePort>`: one HTTP
 * proxy on 127.0.0.1 routes by the Host header (no TLS terminator, hence http) and relays each
 * connection into the container's port through an exec there (`socat`, or bash's `/dev/tcp`).
 * Names under `.localhost` resolve to loopback in this process through
 * `installLocalhostResolution()` (../e2b/e2b-tunnels.ts), which the emulator installs; a process
 * talking to a spawned emulator installs it itself.
 *
 * Rules kept: port 1024-65535 and not 3000 (else 400 `Invalid port`), one record per port (a
 * repeat answers the same record), DELETE 204 even when absent, nothing checks that the port
 * listens (a request then gets 502 from the edge), the URL stops working when the container
 * stops. Named tunnels (`{"name"}`) need a Cloudflare account: 502 as without
 * `CLOUDFLARE_API_TOKEN`. `tunnelFailure: true` makes every quick tunnel a 502 `tunnel_error`,
 * as a container without `cloudflared` or egress answers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { installLocalhostResolution } from '../e2b/e2b-tunnels.js';
import { BridgeError, invalidRequest, sendEmpty, sendJson, type BridgeRoute } from './cloudflare-http.js';
import type { ContainerOf } from './cloudflare-exec.js';
import type { BridgeState, Container, TunnelRecord } from './cloudflare-state.js';

/** Host names of tunnels end in this, then the edge's port. */
export const tunnelDomain = 'trycloudflare.localhost';

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1024 && port <= 65535 && port !== 3000;
}

const tunnelNamePattern = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** `{ name }` of a named tunnel, undefined for a quick one; the bridge's 400s for a bad body. */
function tunnelName(text: string): string | undefined {
  if (text.trim() === '') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalidRequest('Invalid JSON body');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('name' in body) || body.name === undefined) {
    return undefined;
  }
  const name = (body as { name: unknown }).name;
  if (typeof name !== 'string') throw invalidRequest('name must be a string when provided');
  if (name.length === 0 || name.length > 63) throw invalidRequest(`Tunnel name '${name}' must be 1–63 characters long.`);
  if (!tunnelNamePattern.test(name)) {
    throw invalidRequest(
      `Tunnel name '${name}' is not a valid DNS label. Use lowercase letters, digits, and internal hyphens only (no dots, no leading/trailing hyphens).`,
    );
  }
  return name;
}

/** Four random lowercase words-ish labels, like trycloudflare's `a-b-c-d`. */
function quickLabel(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return [0, 1, 2, 3].map(() => [...randomBytes(6)].map((byte) => letters[byte % 26]).join('')).join('-');
}

export interface TunnelEdge {
  readonly port: number;
  /** Routes by label (the host name's first part). */
  readonly byLabel: Map<string, { container: Container; record: TunnelRecord }>;
  close(): Promise<void>;
}

export function tunnelRoutes(state: BridgeState, containerOf: ContainerOf, edge: TunnelEdge, options: { failure: boolean }): BridgeRoute[] {
  // A stopped container's tunnels stop with it (their URLs do not survive a restart).
  state.onContainerGone.add((container) => {
    for (const [label, entry] of edge.byLabel) if (entry.container === container) edge.byLabel.delete(label);
    container.data.tunnels.clear();
  });
  const parsePort = (raw: string | undefined) => {
    const port = Number(raw);
    if (!validPort(port)) throw invalidRequest('Invalid port');
    return port;
  };
  return [
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/tunnel/:port',
      async handle(request, response) {
        const port = parsePort(request.params.port);
        const name = tunnelName((await request.body()).toString('utf8'));
        const container = containerOf(request);
        if (name !== undefined) {
          throw new BridgeError(
            502,
            'tunnel failed: Named tunnels require CLOUDFLARE_API_TOKEN. Set it as a Worker secret with an account and zone (the emulator has none).',
            'tunnel_error',
          );
        }
        if (options.failure) {
          throw new BridgeError(502, 'tunnel failed: OperationInterruptedError: Tunnel recovery attempts were exhausted', 'tunnel_error');
        }
        let record = container.data.tunnels.get(port);
        if (!record) {
          const label = quickLabel();
          const hostname = `${label}.${tunnelDomain}`;
          record = {
            id: `quick-${randomUUID()}`,
            port,
            url: `http://${hostname}:${edge.port}`,
            hostname,
            createdAt: new Date().toISOString(),
          };
          container.data.tunnels.set(port, record);
          edge.byLabel.set(label, { container, record });
        }
        sendJson(response, 200, record);
      },
    },
    {
      method: 'DELETE',
      pattern: '/v1/sandbox/:id/tunnel/:port',
      async handle(request, response) {
        const port = parsePort(request.params.port);
        const container = containerOf(request);
        const record = container.data.tunnels.get(port);
        if (record) {
          container.data.tunnels.delete(port);
          edge.byLabel.delete(record.hostname.split('.')[0]!);
        }
        sendEmpty(response, 204);
      },
    },
  ];
}

// ---- the edge ----------------------------------------------------------------------------

/** Run in the container: stdin/stdout become one TCP connection to the port there. */
const relayScript = [
  'if command -v socat >/dev/null 2>&1; then exec socat - "TCP:127.0.0.1:$1"; fi',
  // Without socat: the reader ends when the server closes, then the writer is stopped.
  'exec bash -c \'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; cat <&3 & r=$!; cat >&3 & w=$!; wait "$r"; kill "$w" 2>/dev/null; exit 0\' relay "$1"',
].join('\n');

async function openRelay(container: Container, port: number): Promise<Duplex> {
  const process = await container.local.exec(['/bin/sh', '-c', relayScript, 'relay', String(port)], { cwd: '/' });
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
  const stream = Duplex.fromWeb({ readable: process.stdout, writable: process.stdin });
  stream.on('close', () => void process.kill().catch(() => undefined));
  stream.on('error', () => undefined);
  return stream;
}

function labelOf(host: string | undefined): string | undefined {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  return name.endsWith(`.${tunnelDomain}`) ? name.slice(0, -tunnelDomain.length - 1) : undefined;
}

function answer(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The tunnel a request is for; undefined when its host names none that is open (Cloudflare's 530/1033). */
function targetOf(edge: TunnelEdge, req: IncomingMessage) {
  const label = labelOf(req.headers.host);
  const entry = label === undefined ? undefined : edge.byLabel.get(label);
  return entry && !entry.container.end ? entry : undefined;
}

async function forward(edge: TunnelEdge, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = targetOf(edge, req);
  if (!target) {
    req.resume();
    return answer(res, 530, `error code: 1033 (no tunnel is open for ${req.headers.host ?? 'this host'})`);
  }
  const relay = await openRelay(target.container, target.record.port);
  const upstream = httpRequest({
    method: req.method,
    path: req.url ?? '/',
    headers: req.headers,
    createConnection: () => relay as unknown as Socket,
  });
  upstream.on('response', (reply) => {
    res.writeHead(reply.statusCode ?? 502, reply.headers);
    reply.pipe(res);
  });
  upstream.on('error', () => {
    relay.destroy();
    answer(res, 502, `Bad Gateway: nothing answered on port ${target.record.port} in the sandbox`);
  });
  res.on('close', () => relay.destroy());
  req.pipe(upstream);
}

async function upgrade(edge: TunnelEdge, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const target = targetOf(edge, req);
  if (!target) return void socket.end('HTTP/1.1 530 Origin Unreachable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  const relay = await openRelay(target.container, target.record.port);
  const lines = [`${req.method} ${req.url ?? '/'} HTTP/1.1`];
  for (let index = 0; index < req.rawHeaders.length; index += 2) lines.push(`${req.rawHeaders[index]}: ${req.rawHeaders[index + 1]}`);
  relay.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) relay.write(head);
  relay.pipe(socket).pipe(relay);
  const close = () => {
    relay.destroy();
    socket.destroy();
  };
  relay.on('close', close);
  socket.on('close', close);
}

/** Starts the edge on 127.0.0.1 and the `*.localhost` resolution hook (both go on `close`). */
export async function startTunnelEdge(): Promise<TunnelEdge> {
  const sockets = new Set<Socket>();
  const byLabel: TunnelEdge['byLabel'] = new Map();
  let edge: TunnelEdge | undefined;
  const server: Server = createServer((req, res) => {
    forward(edge!, req, res).catch((error: unknown) => answer(res, 502, `Bad Gateway: ${String(error)}`));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgrade(edge!, req, socket, head).catch(() => socket.destroy());
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
  const uninstall = installLocalhostResolution();
  edge = {
    port: typeof address === 'object' && address ? address.port : 0,
    byLabel,
    async close() {
      uninstall();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
  return edge;
}
