/**
 * The public edge: what Fly's proxy does for `https://<app>.fly.dev`, on one plain-HTTP listener
 * on 127.0.0.1 that routes by the Host header.
 *
 * - Host names are `<app>.fly.localhost:<edgePort>` (the emulator's `edgeDomain` is
 *   `fly.localhost:<edgePort>`). The process that sends requests resolves `*.localhost` with
 *   `installLocalhostResolution()` (../shared/localhost-resolution.ts). There is no TLS: the scheme
 *   is `http` (`ws` for WebSocket) where Fly's is `https`.
 * - The listener stands for Fly's external ports 443 and 80: a request goes to a machine of the app
 *   whose `services` have a port entry for 443 (else 80), to that service's `internal_port`. Other
 *   external ports have no listener here.
 * - Which machine: the one named by the `fly-force-instance-id` header (a machine id; the header
 *   is not passed on), else one of the app's started machines in turn. A stopped or suspended
 *   machine whose service has `autostart: true` is started first, as Fly's proxy does.
 * - Bytes really reach the machine: each connection is relayed into its sandbox by an exec of
 *   `socat - TCP:127.0.0.1:<internal_port>` (bash's `/dev/tcp` without socat). WebSocket upgrades
 *   pass through.
 * - Answers of the edge itself (plain text, `fly-emulator-edge: 1`): 502 when no machine can take
 *   the request (none started, the forced one missing or not started, nothing listening on the
 *   internal port), 404 for a host name of no app, 400 for a host outside the edge domain.
 * - Headers Fly's proxy adds reach the server: `fly-forwarded-port`, `x-forwarded-proto`,
 *   `x-forwarded-port`, `x-forwarded-for`, `fly-client-ip`, `fly-region`, `via`; the answer
 *   carries `fly-request-id` and `via`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { serviceForPort, type MachineService } from './fly-config.js';
import type { FlyMachine } from './fly-machine.js';
import type { FlyState } from './fly-state.js';

export const edgeHostSuffix = 'fly.localhost';
export const forceInstanceHeader = 'fly-force-instance-id';
/** The external ports the edge listener stands for, in the order they are looked for. */
const externalPorts = [443, 80] as const;
/** How long the edge waits for an autostarted machine, ms. */
const autostartWaitMs = 30_000;

export interface FlyEdge {
  readonly port: number;
  /** `fly.localhost:<port>`. */
  readonly domain: string;
  close(): Promise<void>;
}

interface Target {
  machine: FlyMachine;
  service: MachineService;
  externalPort: number;
}

type Resolved = { target: Target } | { status: number; message: string };

const relayScript = [
  'if command -v socat >/dev/null 2>&1; then exec socat - "TCP:127.0.0.1:$1"; fi',
  'if command -v bash >/dev/null 2>&1; then',
  // The reader ends when the server closes; the writer is then stopped so that stdout ends.
  '  exec bash -c \'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; cat <&3 & r=$!; cat >&3 & w=$!; wait "$r"; kill "$w" 2>/dev/null; exit 0\' relay "$1"',
  'fi',
  'echo "the Fly emulator relays with socat or bash; the machine has neither" >&2; exit 127',
].join('\n');

function appOf(host: string | undefined): string | undefined {
  const name = (host ?? '').replace(/:\d+$/, '').toLowerCase().replace(/\.$/, '');
  const suffix = `.${edgeHostSuffix}`;
  if (!name.endsWith(suffix)) return undefined;
  const app = name.slice(0, -suffix.length);
  return /^[a-z0-9-]+$/.test(app) ? app : undefined;
}

function serving(machine: FlyMachine): { service: MachineService; externalPort: number } | undefined {
  for (const externalPort of externalPorts) {
    const service = serviceForPort(machine.config, externalPort);
    if (service && service.protocol === 'tcp') return { service, externalPort };
  }
  return undefined;
}

async function waitStarted(machine: FlyMachine): Promise<boolean> {
  if (machine.sandbox) return true;
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => done(false), autostartWaitMs);
    const unsubscribe = machine.onChange(() => {
      if (machine.sandbox) done(true);
      else if (['stopped', 'destroyed', 'failed', 'destroying'].includes(machine.state)) done(false);
    });
    function done(value: boolean) {
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    }
  });
}

async function ready(target: Target): Promise<boolean> {
  const { machine, service } = target;
  if (machine.sandbox) return true;
  if (service.autostart === true && ['stopped', 'suspended', 'created'].includes(machine.state)) void machine.start('flyd');
  if (service.autostart !== true && machine.state !== 'starting') return false;
  return waitStarted(machine);
}

let turn = 0;

async function resolve(state: FlyState, req: IncomingMessage): Promise<Resolved> {
  const app = appOf(req.headers.host);
  if (!app) return { status: 400, message: `Host "${req.headers.host ?? ''}" is not <app>.${edgeHostSuffix}` };
  if (!state.apps.has(app)) return { status: 404, message: `no app named ${app}` };
  const candidates = state
    .machinesOf(app)
    .map((machine) => ({ machine, ...serving(machine) }))
    .filter((entry): entry is Target => entry.service !== undefined);
  const forced = req.headers[forceInstanceHeader];
  if (typeof forced === 'string' && forced !== '') {
    const target = candidates.find((entry) => entry.machine.id === forced);
    if (!target) return { status: 502, message: `machine ${forced} of app ${app} has no service on port 443 or 80, or does not exist` };
    if (!(await ready(target))) return { status: 502, message: `machine ${forced} is not started (state: ${target.machine.state})` };
    return { target };
  }
  if (candidates.length === 0) return { status: 502, message: `app ${app} has no machine with a service on port 443 or 80` };
  const started = candidates.filter((entry) => entry.machine.sandbox);
  if (started.length > 0) return { target: started[turn++ % started.length]! };
  for (const entry of candidates) if (await ready(entry)) return { target: entry };
  return { status: 502, message: `app ${app} has no started machine to take the request` };
}

interface Relay {
  stream: Duplex;
  stderr(): string;
}

async function openRelay(target: Target): Promise<Relay> {
  const sandbox = target.machine.sandbox;
  if (!sandbox) throw new Error(`machine ${target.machine.id} stopped`);
  const process = await sandbox.exec(['sh', '-c', relayScript, 'relay', String(target.service.internal_port)], { cwd: '/' });
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

function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  const text = `${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'fly-emulator-edge': '1',
  });
  res.end(text);
}

function refuseUpgrade(socket: Socket, status: number, message: string): void {
  const reason = status === 404 ? 'Not Found' : status === 400 ? 'Bad Request' : 'Bad Gateway';
  const text = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nFly-Emulator-Edge: 1\r\nConnection: close\r\n\r\n${text}`,
  );
}

function forwardedHeaders(req: IncomingMessage, target: Target, region: string): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === forceInstanceHeader) continue;
    headers[name] = value;
  }
  const client = req.socket.remoteAddress ?? '127.0.0.1';
  headers['fly-forwarded-port'] = String(target.externalPort);
  headers['x-forwarded-port'] = String(target.externalPort);
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-for'] = typeof req.headers['x-forwarded-for'] === 'string' ? `${req.headers['x-forwarded-for']}, ${client}` : client;
  headers['fly-client-ip'] = client;
  headers['fly-region'] = region;
  headers.via = '1.1 fly.io';
  return headers;
}

function closedPort(target: Target, relay: Relay | undefined, detail: string): string {
  const said = relay?.stderr();
  const why = said || detail;
  return `machine ${target.machine.id}: nothing answered on internal port ${target.service.internal_port}${why ? ` (${why})` : ''}`;
}

async function forward(state: FlyState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const resolved = await resolve(state, req);
  if (!('target' in resolved)) {
    req.resume();
    return refuse(res, resolved.status, resolved.message);
  }
  const { target } = resolved;
  let relay: Relay;
  try {
    relay = await openRelay(target);
  } catch (error) {
    req.resume();
    return refuse(res, 502, closedPort(target, undefined, error instanceof Error ? error.message : String(error)));
  }
  const upstream = httpRequest({
    method: req.method,
    path: req.url ?? '/',
    headers: forwardedHeaders(req, target, target.machine.region),
    createConnection: () => relay.stream as unknown as Socket,
  });
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'fly-request-id': randomBytes(13).toString('hex'), via: '1.1 fly.io' });
    answer.pipe(res);
  });
  upstream.on('error', (error) => {
    relay.stream.destroy();
    if (res.headersSent) return void res.destroy();
    // The relay's stderr may arrive just after its stdout ended.
    setTimeout(() => refuse(res, 502, closedPort(target, relay, error.message)), 50);
  });
  res.on('close', () => relay.stream.destroy());
  req.pipe(upstream);
}

async function upgrade(state: FlyState, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const resolved = await resolve(state, req);
  if (!('target' in resolved)) return refuseUpgrade(socket, resolved.status, resolved.message);
  const { target } = resolved;
  const relay = await openRelay(target).catch(() => undefined);
  if (!relay) return refuseUpgrade(socket, 502, closedPort(target, undefined, ''));
  const lines = [`${req.method} ${req.url ?? '/'} HTTP/1.1`];
  for (const [name, value] of Object.entries(forwardedHeaders(req, target, target.machine.region))) {
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

/** Starts the edge on 127.0.0.1. */
export async function startFlyEdge(state: FlyState): Promise<FlyEdge> {
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
  return {
    port,
    domain: `${edgeHostSuffix}:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
