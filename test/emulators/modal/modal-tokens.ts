/**
 * Connect tokens: `sb.createConnectToken({ port, userMetadata })` (SandboxCreateConnectToken and
 * its V2) returns `{ url, token }`, and the URL reaches the sandbox's port through an
 * authenticating HTTP proxy that the emulator runs on 127.0.0.1. As on Modal, the token goes in
 * `Authorization: Bearer <token>` or the `_modal_connect_token` query parameter (which the proxy
 * strips), the port defaults to 8080 and need not be declared at create, the server in the
 * sandbox gets the metadata in `X-Verified-User-Data` (a client's own such header is dropped),
 * and WebSocket upgrades pass through.
 *
 * How the emulator differs from Modal (also in the README's emulator section):
 * - the URL is plain `http://127.0.0.1:<port>`, one proxy for every sandbox (Modal gives an
 *   https URL of its own domain): the emulator has no TLS terminator;
 * - each proxied connection is relayed by `socat` run inside the sandbox (an exec), so the image
 *   needs socat (the host image has it); without it the proxy answers 502 naming socat;
 * - a missing or unknown token is 401; a sandbox that ended, or nothing listening, is 502;
 * - tokens never expire and no cookie is set for the query-parameter form.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { randomToken } from '../shared/ids.js';
import { RpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import type { EmulatedSandbox, ModalState } from './modal-state.js';

const tokenParam = '_modal_connect_token';
const userDataHeader = 'x-verified-user-data';

interface Grant {
  found: EmulatedSandbox;
  port: number;
  userMetadata: string;
}

interface ConnectProxy {
  readonly port: number;
  readonly grants: Map<string, Grant>;
}

const proxies = new WeakMap<ModalState, Promise<ConnectProxy>>();

export function tokenHandlers(state: ModalState): Pick<RpcHandlers, 'sandboxCreateConnectToken' | 'sandboxCreateConnectTokenV2'> {
  return {
    sandboxCreateConnectToken: (request) => createToken(state, request),
    sandboxCreateConnectTokenV2: (request) => createToken(state, request),
  };
}

async function createToken(state: ModalState, request: Json): Promise<Json> {
  const found = state.sandbox(request.sandboxId);
  if (found.end) throw new RpcError(grpc.status.FAILED_PRECONDITION, `SandboxCreateConnectToken: sandbox ${found.id} has finished`);
  const port = Number(request.port) || 8080;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `SandboxCreateConnectToken: port must be from 1 to 65535, got ${port}`);
  }
  const proxy = await connectProxy(state);
  const token = `ct-${randomToken(32)}`;
  proxy.grants.set(token, { found, port, userMetadata: String(request.userMetadata ?? '') });
  return { url: `http://127.0.0.1:${proxy.port}`, token };
}

function connectProxy(state: ModalState): Promise<ConnectProxy> {
  let proxy = proxies.get(state);
  if (!proxy) {
    proxy = startProxy(state);
    proxies.set(state, proxy);
  }
  return proxy;
}

async function startProxy(state: ModalState): Promise<ConnectProxy> {
  const grants = new Map<string, Grant>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => void forward(grants, req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void upgrade(grants, req, socket, head));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  state.closers.add(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, grants };
}

/** The grant a request's token names and the path to forward (without the token parameter). */
function authorize(grants: Map<string, Grant>, req: IncomingMessage): { grant?: Grant; path: string; viaHeader: boolean } {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const fromQuery = url.searchParams.get(tokenParam);
  url.searchParams.delete(tokenParam);
  const path = `${url.pathname}${url.search}`;
  const headerGrant = bearer ? grants.get(bearer) : undefined;
  if (headerGrant) return { grant: headerGrant, path, viaHeader: true };
  return { grant: fromQuery ? grants.get(fromQuery) : undefined, path, viaHeader: false };
}

/** The request's headers as the sandbox gets them: no token, the verified metadata. */
function forwardedHeaders(req: IncomingMessage, grant: Grant, viaHeader: boolean): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === userDataHeader || (viaHeader && name === 'authorization')) continue;
    headers[name] = value;
  }
  if (grant.userMetadata) headers[userDataHeader] = grant.userMetadata;
  return headers;
}

/** A byte stream to `127.0.0.1:<port>` inside the sandbox, through socat run there. */
async function openRelay(grant: Grant): Promise<Duplex> {
  const relayed = await grant.found.local.exec(['socat', '-', `TCP:127.0.0.1:${grant.port}`]);
  const relay = Duplex.fromWeb({ readable: relayed.stdout, writable: relayed.stdin });
  relay.on('close', () => void relayed.kill().catch(() => undefined));
  relay.on('error', () => undefined);
  return relay;
}

function refuse(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

async function forward(grants: Map<string, Grant>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { grant, path, viaHeader } = authorize(grants, req);
  if (!grant) return refuse(res, 401, 'Missing or invalid connect token');
  if (grant.found.end) return refuse(res, 502, `Sandbox ${grant.found.id} is no longer running`);
  let relay: Duplex;
  try {
    relay = await openRelay(grant);
  } catch (error) {
    return refuse(res, 502, `Could not reach port ${grant.port} in the sandbox (the emulator relays through socat): ${String(error)}`);
  }
  const upstream = httpRequest({
    method: req.method,
    path,
    headers: forwardedHeaders(req, grant, viaHeader),
    createConnection: () => relay as unknown as Socket,
  });
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', (error) => {
    relay.destroy();
    if (!res.headersSent) refuse(res, 502, `Nothing answered on port ${grant.port} in the sandbox: ${error.message}`);
    else res.destroy();
  });
  res.on('close', () => relay.destroy());
  req.pipe(upstream);
}

async function upgrade(grants: Map<string, Grant>, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => undefined);
  const { grant, path, viaHeader } = authorize(grants, req);
  if (!grant || grant.found.end) {
    socket.end(`HTTP/1.1 ${grant ? '502 Bad Gateway' : '401 Unauthorized'}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    return;
  }
  const relay = await openRelay(grant).catch(() => undefined);
  if (!relay) {
    socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const lines = [`${req.method} ${path} HTTP/1.1`];
  for (const [name, value] of Object.entries(forwardedHeaders(req, grant, viaHeader))) {
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`);
  }
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
