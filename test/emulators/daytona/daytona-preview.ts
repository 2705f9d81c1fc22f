/**
 * Preview links: what `sandbox.getPreviewLink(port)` and `getSignedPreviewUrl(port, seconds)`
 * give, reached from the host through one HTTP proxy of the emulator on 127.0.0.1 that routes
 * by the Host header, as Daytona's preview proxy does.
 *
 * The shape (the adapter builds nothing itself: it uses the URLs the API returns):
 * - preview link: `http://<port>-<sandboxId>.daytona.localhost:<edgePort>` with `token`, sent by
 *   the client in the `x-daytona-preview-token` header (or the `DAYTONA_SANDBOX_AUTH_KEY` query
 *   parameter); a sandbox created `public: true` needs no token. Daytona's is
 *   `https://<port>-<sandboxId>.proxy.daytona.works`: the emulator has no TLS, so the scheme is
 *   http (`ws://` for WebSocket).
 * - signed preview URL: `http://<port>-<token>.daytona.localhost:<edgePort>`, the token in the
 *   host name, valid for `expiresInSeconds` (default 60) or until expired through the API, and
 *   for that port only. A plain `fetch` or WebSocket can use it as it is.
 * - `*.localhost` names resolve to loopback only with `installLocalhostResolution()` in the
 *   client's process (../shared/localhost-resolution.ts); the emulator installs it in its own.
 *
 * Every port is reachable, declared or not (Daytona previews any port 3000-9999; the emulator
 * any). Each proxied connection is relayed into the sandbox by an exec of
 * `socat - TCP:127.0.0.1:<port>` (socat is in the default image), or bash's `/dev/tcp`. WebSocket
 * upgrades pass through. The token header is not passed on.
 *
 * Answers: 401 without a valid token (or with an expired or revoked signed one), 404 for an
 * unknown sandbox, 400 for a sandbox that is not started, 502 when nothing listens on the port.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { installLocalhostResolution } from '../shared/localhost-resolution.js';
import type { DaytonaSandbox, DaytonaState } from './daytona-state.js';

export const previewHostSuffix = 'daytona.localhost';
export const previewTokenHeader = 'x-daytona-preview-token';
const previewTokenQuery = 'DAYTONA_SANDBOX_AUTH_KEY';

export function previewUrl(state: DaytonaState, sandbox: DaytonaSandbox, port: number): string {
  return `http://${port}-${sandbox.id}.${state.previewDomain}`;
}

export function signedPreviewUrl(state: DaytonaState, port: number, token: string): string {
  return `http://${port}-${token}.${state.previewDomain}`;
}

interface Target {
  sandbox: DaytonaSandbox;
  port: number;
}

type Resolved = { target: Target } | { status: number; message: string };

function resolveTarget(state: DaytonaState, req: IncomingMessage): Resolved {
  const name = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
  const match = /^(\d{1,5})-([a-z0-9-]+)\.(.+)$/.exec(name);
  if (!match || match[3] !== previewHostSuffix)
    return { status: 400, message: `Host "${req.headers.host ?? ''}" is not <port>-<sandboxId>.${previewHostSuffix}` };
  const port = Number(match[1]);
  if (port < 1 || port > 65535) return { status: 400, message: `port ${port} is out of range` };
  const key = match[2]!;
  let sandbox = state.sandboxes.get(key);
  let authorised = false;
  if (sandbox) {
    const url = new URL(req.url ?? '/', 'http://preview');
    const given = req.headers[previewTokenHeader] ?? url.searchParams.get(previewTokenQuery);
    authorised = sandbox.public || given === sandbox.previewToken;
  } else {
    for (const candidate of state.sandboxes.values()) {
      const signed = candidate.signedPreviews.get(key);
      if (!signed) continue;
      sandbox = candidate;
      authorised = signed.port === port && signed.expiresAt > Date.now();
      break;
    }
    if (!sandbox) return { status: 401, message: 'Unauthorized: the preview token is not valid' };
  }
  if (sandbox.state === 'destroyed') return { status: 404, message: `Sandbox ${sandbox.id} not found` };
  if (!authorised)
    return { status: 401, message: `Unauthorized: the ${previewTokenHeader} header is missing or wrong (or the signed URL expired)` };
  if (sandbox.state !== 'started' || !sandbox.local)
    return { status: 400, message: `Sandbox ${sandbox.id} is not started (state: ${sandbox.state})` };
  state.touch(sandbox);
  return { target: { sandbox, port } };
}

/** The relay run in the sandbox: stdin/stdout become one TCP connection to the port there. */
const relayScript = [
  'if command -v socat >/dev/null 2>&1; then exec socat - "TCP:127.0.0.1:$1"; fi',
  'if command -v bash >/dev/null 2>&1; then',
  '  exec bash -c \'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; cat <&3 & r=$!; cat >&3 & w=$!; wait "$r"; kill "$w" 2>/dev/null; exit 0\' relay "$1"',
  'fi',
  'echo "the Daytona emulator relays previews with socat or bash; the sandbox has neither" >&2; exit 127',
].join('\n');

async function openRelay(target: Target): Promise<Duplex> {
  const process = await target.sandbox.local!.exec(['sh', '-c', relayScript, 'relay', String(target.port)], { cwd: '/' });
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
  const stream = Duplex.fromWeb({ readable: process.stdout, writable: process.stdin });
  stream.on('close', () => void process.kill().catch(() => undefined));
  stream.on('error', () => undefined);
  return stream;
}

function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify({ statusCode: status, message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const text = JSON.stringify({ statusCode: status, message });
  socket.end(
    `HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

function forwardedHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && name !== previewTokenHeader) headers[name] = value;
  return headers;
}

async function forward(state: DaytonaState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const resolved = resolveTarget(state, req);
  if (!('target' in resolved)) {
    req.resume();
    return refuse(res, resolved.status, resolved.message);
  }
  const relay = await openRelay(resolved.target);
  const upstream = httpRequest({
    method: req.method,
    path: req.url ?? '/',
    headers: forwardedHeaders(req),
    createConnection: () => relay as unknown as Socket,
  });
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => {
    relay.destroy();
    refuse(res, 502, `Nothing answered on port ${resolved.target.port} of sandbox ${resolved.target.sandbox.id}`);
  });
  res.on('close', () => relay.destroy());
  req.pipe(upstream);
}

async function upgrade(state: DaytonaState, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const resolved = resolveTarget(state, req);
  if (!('target' in resolved)) return refuseUpgrade(socket, resolved.status, resolved.message);
  const relay = await openRelay(resolved.target);
  const lines = [`${req.method} ${req.url ?? '/'} HTTP/1.1`];
  for (const [name, value] of Object.entries(forwardedHeaders(req)))
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
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

export interface PreviewEdge {
  readonly port: number;
  /** `daytona.localhost:<port>`. */
  readonly domain: string;
  close(): Promise<void>;
}

/** Starts the edge on 127.0.0.1 and the `*.localhost` resolution hook (both go on `close`). */
export async function startPreviewEdge(state: DaytonaState): Promise<PreviewEdge> {
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
    domain: `${previewHostSuffix}:${port}`,
    async close() {
      uninstall();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
