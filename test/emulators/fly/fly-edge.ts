/**
 * The public edge: what Fly's proxy does for `https://<app>.fly.dev[:port]`, in plain HTTP on
 * loopback, routed by the Host header.
 *
 * - Host names are `<app>.fly.localhost` (the emulator's `edgeDomain` is `fly.localhost`). Each app
 *   has an address of its own in 127.0.0.0/8 (`loopbackAddressFor`, a hash of its name), as each
 *   Fly app has its own IP, and the edge listens there on every external port the app's machines
 *   declare in `services` (`ports[].port`, or `start_port`-`end_port` up to 32 ports): so
 *   `http://<app>.fly.localhost:8080` reaches the service published on port 8080, with Fly's URL
 *   shape and no port of 127.0.0.1 taken. The process that sends requests resolves these names
 *   with `installLocalhostResolution()` (../shared/localhost-resolution.ts). There is no TLS: the
 *   scheme is `http` (`ws` for WebSocket) where Fly's is `https`, on every port, 443 included.
 *   Ports below 1024 need the emulator to run as root (otherwise they are logged and not served).
 * - Which machine: the one named by the `fly-force-instance-id` header (a machine id; the header
 *   is not passed on), else one of the app's started machines with a service on that port, in
 *   turn. A stopped or suspended machine whose service has `autostart: true` is started first, as
 *   Fly's proxy does.
 * - Bytes really reach the machine: each connection is relayed into its sandbox by an exec of
 *   `socat - TCP:127.0.0.1:<internal_port>` (bash's `/dev/tcp` without socat). WebSocket upgrades
 *   pass through.
 * - Answers of the edge itself (plain text, `fly-emulator-edge: 1`): 502 when no machine can take
 *   the request (none started, the forced one missing or not started, nothing listening on the
 *   internal port), 404 for a host name of another app than the address's, 400 for a host outside
 *   the edge domain.
 * - Headers Fly's proxy adds reach the server: `fly-forwarded-port`, `x-forwarded-proto`,
 *   `x-forwarded-port`, `x-forwarded-for`, `fly-client-ip`, `fly-region`, `via`; the answer
 *   carries `fly-request-id` and `via`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { loopbackAddressFor } from '../shared/localhost-resolution.js';
import { serviceForPort, type MachineService } from './fly-config.js';
import type { FlyMachine } from './fly-machine.js';
import type { FlyState } from './fly-state.js';

export const edgeHostSuffix = 'fly.localhost';
export const forceInstanceHeader = 'fly-force-instance-id';
/** The most ports of one `start_port`-`end_port` range the edge opens. */
const maxRangePorts = 32;
/** How long the edge waits for an autostarted machine, ms. */
const autostartWaitMs = 30_000;

export interface FlyEdge {
  /** `fly.localhost`: `<app>.fly.localhost:<port>` reaches the app's service on `<port>`. */
  readonly domain: string;
  /** Opens the listeners the app's machines' services need (call after a create or update). */
  sync(app: string): Promise<void>;
  /** Closes the app's listeners (the app was deleted). */
  closeApp(app: string): Promise<void>;
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

function serving(machine: FlyMachine, externalPort: number): { service: MachineService; externalPort: number } | undefined {
  const service = serviceForPort(machine.config, externalPort);
  return service && service.protocol === 'tcp' ? { service, externalPort } : undefined;
}

/** The external TCP ports the app's machines (not destroyed) publish. */
function publishedPorts(state: FlyState, app: string): Set<number> {
  const ports = new Set<number>();
  for (const machine of state.machinesOf(app)) {
    for (const service of machine.config.services ?? []) {
      if (service.protocol !== 'tcp') continue;
      for (const entry of service.ports ?? []) {
        if (entry.port !== undefined) ports.add(entry.port);
        else if (entry.start_port !== undefined && entry.end_port !== undefined) {
          for (let port = entry.start_port; port <= Math.min(entry.end_port, entry.start_port + maxRangePorts - 1); port++) ports.add(port);
        }
      }
    }
  }
  return ports;
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

async function resolve(state: FlyState, req: IncomingMessage, listener: Listener): Promise<Resolved> {
  const app = appOf(req.headers.host);
  if (!app) return { status: 400, message: `Host "${req.headers.host ?? ''}" is not <app>.${edgeHostSuffix}` };
  if (app !== listener.app || !state.apps.has(app)) return { status: 404, message: `no app named ${app} at this address` };
  const externalPort = listener.port;
  const candidates = state
    .machinesOf(app)
    .map((machine) => ({ machine, ...serving(machine, externalPort) }))
    .filter((entry): entry is Target => entry.service !== undefined);
  const forced = req.headers[forceInstanceHeader];
  if (typeof forced === 'string' && forced !== '') {
    const target = candidates.find((entry) => entry.machine.id === forced);
    if (!target)
      return { status: 502, message: `machine ${forced} of app ${app} has no service on port ${externalPort}, or does not exist` };
    if (!(await ready(target))) return { status: 502, message: `machine ${forced} is not started (state: ${target.machine.state})` };
    return { target };
  }
  if (candidates.length === 0) return { status: 502, message: `app ${app} has no machine with a service on port ${externalPort}` };
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

async function forward(state: FlyState, listener: Listener, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const resolved = await resolve(state, req, listener);
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

async function upgrade(state: FlyState, listener: Listener, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const resolved = await resolve(state, req, listener);
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

interface Listener {
  readonly app: string;
  readonly port: number;
  readonly server: Server;
  readonly sockets: Set<Socket>;
}

async function listen(state: FlyState, app: string, port: number): Promise<Listener> {
  const sockets = new Set<Socket>();
  const server: Server = createServer();
  const listener: Listener = { app, port, server, sockets };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    forward(state, listener, req, res).catch((error: unknown) => refuse(res, 502, String(error)));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgrade(state, listener, req, socket, head).catch(() => socket.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ready, reject) => {
    server.once('error', reject);
    server.listen(port, loopbackAddressFor(`${app}.${edgeHostSuffix}`), () => ready());
  });
  return listener;
}

async function closeListener(listener: Listener): Promise<void> {
  for (const socket of listener.sockets) socket.destroy();
  await new Promise<void>((done) => listener.server.close(() => done()));
}

/** The edge of `state`'s apps: listeners open as machines publish ports. */
export function startFlyEdge(state: FlyState): FlyEdge {
  const listeners = new Map<string, Promise<Listener | undefined>>();
  const key = (app: string, port: number) => `${app}:${port}`;
  return {
    domain: edgeHostSuffix,
    async sync(app) {
      const opening: Array<Promise<unknown>> = [];
      for (const port of publishedPorts(state, app)) {
        if (listeners.has(key(app, port))) continue;
        const opened = listen(state, app, port).catch((error: unknown) => {
          console.error(
            `[fly emulator] the edge cannot listen for ${app}.${edgeHostSuffix}:${port}:`,
            error instanceof Error ? error.message : error,
          );
          listeners.delete(key(app, port));
          return undefined;
        });
        listeners.set(key(app, port), opened);
        opening.push(opened);
      }
      await Promise.all(opening);
    },
    async closeApp(app) {
      const mine = [...listeners.entries()].filter(([name]) => name.startsWith(`${app}:`));
      for (const [name] of mine) listeners.delete(name);
      for (const [, opened] of mine) {
        const listener = await opened;
        if (listener) await closeListener(listener);
      }
    },
    async close() {
      const all = [...listeners.values()];
      listeners.clear();
      for (const opened of all) {
        const listener = await opened;
        if (listener) await closeListener(listener);
      }
    },
  };
}
