/**
 * Tunnels: what `sandbox.getHost(port)` gives, reached from the host through one HTTP proxy of
 * the emulator on 127.0.0.1 that routes by the Host header, as E2B's edge proxy does.
 *
 * The exact shape (the adapter builds its tunnel URLs from it):
 * - the emulator's domain (`emulator.domain`, `E2B_DOMAIN`, and `domain` in every create and
 *   connect answer) is `e2b.localhost:<proxyPort>`, so
 *   `sandbox.getHost(8080)` is `8080-<sandboxID>.e2b.localhost:<proxyPort>`, and the tunnel URL is
 *   `http://8080-<sandboxID>.e2b.localhost:<proxyPort>` (`ws://…` for WebSocket). E2B's is
 *   `https://8080-<sandboxID>.e2b.app`: the emulator has no TLS terminator, so the scheme is http.
 * - Name resolution: `*.localhost` is loopback by RFC 6761 (curl and browsers resolve it
 *   themselves), but Node asks getaddrinfo, and this machine's resolver answers ENOTFOUND for
 *   `8080-x.e2b.localhost`. So `startE2bEmulator()` installs `installLocalhostResolution()` in its
 *   process: a `dns.lookup` hook that answers 127.0.0.1 (or ::1) for names ending in
 *   `.localhost` and leaves every other name to the system. It covers `fetch`, `node:http` and
 *   the SDK. A process that talks to an emulator running elsewhere (a spawned one) calls
 *   `installLocalhostResolution()` itself. The hook is counted: the last `close()` removes it.
 *
 * Every port is reachable, declared or not, as on E2B: each proxied connection is relayed into
 * the sandbox by an exec of `socat - TCP:127.0.0.1:<port>` there, or, without socat, by bash's
 * `/dev/tcp` (Debian images have bash). WebSocket upgrades pass through.
 *
 * Answers, as E2B's proxy gives them (JSON `{ code, message, sandboxId }`):
 * - 502 when the sandbox does not exist or ended, or is paused (and not `autoResume`: then the
 *   request resumes it first), or nothing listens on the port;
 * - 403 when the sandbox was created with `network.allowPublicTraffic: false` and the request
 *   lacks its `e2b-traffic-access-token` header (the header is not passed on);
 * - `network.maskRequestHost` replaces the Host header the server sees (`${PORT}` is the port).
 */
import { installLocalhostResolution } from '../shared/localhost-resolution.js';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { E2bSandbox, E2bState } from './e2b-state.js';

/** The domain's host part; the proxy's port follows it. */
export const tunnelHostSuffix = 'e2b.localhost';
const trafficTokenHeader = 'e2b-traffic-access-token';

/** What the proxy asks of the control plane for one sandbox. */
export interface TunnelPolicy {
  /** Required in `e2b-traffic-access-token` when set. */
  trafficAccessToken: string | undefined;
  /** The Host header the server in the sandbox sees (`${PORT}` replaced), when set. */
  maskRequestHost: string | undefined;
}

export interface TunnelRouting {
  /** Undefined when the sandbox is running and reachable; otherwise why not. */
  unavailable(found: E2bSandbox): string | undefined;
  /** Resumes a paused sandbox whose traffic resumes it; false when it does not. */
  autoResume(found: E2bSandbox): Promise<boolean>;
  policy(found: E2bSandbox): TunnelPolicy;
}

export interface TunnelProxy {
  readonly port: number;
  /** `e2b.localhost:<port>`. */
  readonly domain: string;
  /** Starts routing to `state`'s sandboxes (requests before this are 502). */
  serve(state: E2bState, routing: TunnelRouting): void;
  close(): Promise<void>;
}

// ---- name resolution (moved to ../shared/localhost-resolution.ts, re-exported here) ----

export { installLocalhostResolution };

// ---- the proxy ---------------------------------------------------------------------------

interface Target {
  found: E2bSandbox;
  port: number;
  policy: TunnelPolicy;
}

function parseHost(host: string | undefined): { port: number; sandboxId: string } | undefined {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  const match = /^(\d{1,5})-([a-z0-9]+)\.(.+)$/.exec(name);
  if (!match || match[3] !== tunnelHostSuffix) return undefined;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535 ? { port, sandboxId: match[2]! } : undefined;
}

/** The relay run in the sandbox: stdin/stdout become one TCP connection to the port there. */
const relayScript = [
  'if command -v socat >/dev/null 2>&1; then exec socat - "TCP:127.0.0.1:$1"; fi',
  'if command -v bash >/dev/null 2>&1; then',
  // The reader ends when the server closes; the writer is then stopped so that stdout ends.
  '  exec bash -c \'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; cat <&3 & r=$!; cat >&3 & w=$!; wait "$r"; kill "$w" 2>/dev/null; exit 0\' relay "$1"',
  'fi',
  'echo "the E2B emulator relays tunnels with socat or bash; the sandbox has neither" >&2; exit 127',
].join('\n');

interface Relay {
  stream: Duplex;
  /** What the relay said on stderr (why it could not connect). */
  stderr(): string;
}

async function openRelay(target: Target): Promise<Relay> {
  const process = await target.found.local.exec(['sh', '-c', relayScript, 'relay', String(target.port)], { cwd: '/' });
  let said = '';
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of process.stderr) if (said.length < 4096) said += decoder.decode(chunk, { stream: true });
  })().catch(() => undefined);
  const stream = Duplex.fromWeb({ readable: process.stdout, writable: process.stdin });
  stream.on('close', () => void process.kill().catch(() => undefined));
  stream.on('error', () => undefined);
  return { stream, stderr: () => said.trim() };
}

function refuse(res: ServerResponse, status: number, message: string, sandboxId?: string): void {
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify({ code: status, message, ...(sandboxId ? { sandboxId } : {}) });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuseUpgrade(socket: Socket, status: number, message: string): void {
  const text = JSON.stringify({ code: status, message });
  const reason = status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Bad Gateway';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

type Resolved = { target: Target } | { status: number; message: string; sandboxId?: string };

async function resolve(state: E2bState | undefined, routing: TunnelRouting | undefined, req: IncomingMessage): Promise<Resolved> {
  const parsed = parseHost(req.headers.host);
  if (!parsed) return { status: 400, message: `Host "${req.headers.host ?? ''}" is not <port>-<sandboxID>.${tunnelHostSuffix}` };
  const found = state?.sandboxes.get(parsed.sandboxId);
  if (!state || !routing || !found || found.end) {
    return { status: 502, message: `The sandbox ${parsed.sandboxId} was not found`, sandboxId: parsed.sandboxId };
  }
  let why = routing.unavailable(found);
  if (why && (await routing.autoResume(found).catch(() => false))) why = routing.unavailable(found);
  if (why) return { status: 502, message: why, sandboxId: found.id };
  const policy = routing.policy(found);
  if (policy.trafficAccessToken !== undefined && req.headers[trafficTokenHeader] !== policy.trafficAccessToken) {
    return { status: 403, message: `The sandbox ${found.id} requires the ${trafficTokenHeader} header`, sandboxId: found.id };
  }
  return { target: { found, port: parsed.port, policy } };
}

/** The request's headers as the server in the sandbox gets them. */
function forwardedHeaders(req: IncomingMessage, target: Target): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === trafficTokenHeader) continue;
    headers[name] = value;
  }
  if (target.policy.maskRequestHost) headers.host = target.policy.maskRequestHost.replaceAll('${PORT}', String(target.port));
  return headers;
}

function closedPort(target: Target, relay: Relay | undefined, detail: string): string {
  const said = relay?.stderr();
  return `The sandbox ${target.found.id} is running but port ${target.port} is not open${said ? ` (${said})` : detail ? ` (${detail})` : ''}`;
}

async function forward(state: E2bState | undefined, routing: TunnelRouting | undefined, req: IncomingMessage, res: ServerResponse) {
  const resolved = await resolve(state, routing, req);
  if (!('target' in resolved)) {
    req.resume();
    return refuse(res, resolved.status, resolved.message, resolved.sandboxId);
  }
  const { target } = resolved;
  let relay: Relay;
  try {
    relay = await openRelay(target);
  } catch (error) {
    req.resume();
    return refuse(res, 502, closedPort(target, undefined, error instanceof Error ? error.message : String(error)), target.found.id);
  }
  const upstream = httpRequest({
    method: req.method,
    path: req.url ?? '/',
    headers: forwardedHeaders(req, target),
    createConnection: () => relay.stream as unknown as Socket,
  });
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', (error) => {
    relay.stream.destroy();
    if (res.headersSent) return void res.destroy();
    // The relay's stderr may arrive just after its stdout ended.
    setTimeout(() => refuse(res, 502, closedPort(target, relay, error.message), target.found.id), 50);
  });
  res.on('close', () => relay.stream.destroy());
  req.pipe(upstream);
}

async function upgrade(
  state: E2bState | undefined,
  routing: TunnelRouting | undefined,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
) {
  socket.on('error', () => undefined);
  const resolved = await resolve(state, routing, req);
  if (!('target' in resolved)) return refuseUpgrade(socket, resolved.status, resolved.message);
  const { target } = resolved;
  const relay = await openRelay(target).catch(() => undefined);
  if (!relay) return refuseUpgrade(socket, 502, closedPort(target, undefined, ''));
  const lines = [`${req.method} ${req.url ?? '/'} HTTP/1.1`];
  for (const [name, value] of Object.entries(forwardedHeaders(req, target))) {
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
  }
  relay.stream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) relay.stream.write(head);
  relay.stream.pipe(socket).pipe(relay.stream);
  const close = () => {
    relay.stream.destroy();
    socket.destroy();
  };
  relay.stream.on('close', close);
  socket.on('close', close);
}

/** Starts the proxy on 127.0.0.1 and the `*.localhost` resolution hook (both go on `close`). */
export async function startTunnelProxy(): Promise<TunnelProxy> {
  let state: E2bState | undefined;
  let routing: TunnelRouting | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    forward(state, routing, req, res).catch((error: unknown) => refuse(res, 502, String(error)));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgrade(state, routing, req, socket, head).catch(() => socket.destroy());
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
    domain: `${tunnelHostSuffix}:${port}`,
    serve(servedState, servedRouting) {
      state = servedState;
      routing = servedRouting;
    },
    async close() {
      uninstall();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
