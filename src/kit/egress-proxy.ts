/**
 * The egress proxy that enforces a sandbox's network allowlist on providers that give the
 * sandbox no route out (local, Docker). One listener speaks both HTTP proxy (CONNECT, and
 * absolute-form requests for plain HTTP) and SOCKS5 (told apart by the first byte), so the
 * sandbox needs one bridge. The proxy resolves names itself (the sandbox has no DNS), checks
 * each resolved address (no rebinding onto loopback or the metadata address), checks that a
 * TLS ClientHello sent through a CONNECT names the host that was allowed (SNI), and reports
 * each connection as an `egress` event.
 *
 * The HTTP side is node:http's parser driven by hand (its 'connect' and 'request' events on
 * sockets we hand it) rather than a proxy package: the packages on the registry are either
 * forwarders without a hook between "parsed the target" and "dialled it" where the policy must
 * sit, or do their own resolving and dialling, which would bypass `EgressNetwork` and with it
 * the rebinding check. The glue is small; the parsing, the part that must be robust, is node's.
 */
import { type IncomingMessage, type ServerResponse, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { type Server, Socket, createServer as createNetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { SandboxProviderError } from '../errors/index.js';
import type { EgressEvent, EgressProtocol, SandboxEmitter } from '../spec/events.js';
import type { ParsedNetworkPolicy } from '../spec/options.js';
import { type EgressNetwork, systemEgressNetwork } from './egress-network.js';
import { type EgressPolicy, compileEgressPolicy, decideAddress, nameAllowed, normalizeAddress, parseEgressHost } from './egress-policy.js';
import { scanClientHello } from './egress-sni.js';
import { parseSocksGreeting, parseSocksRequest, socksReply, socksResponse } from './egress-socks5.js';

/**
 * Where the proxy listens: a unix socket (bridged into the sandbox), a TCP address, or `handle`,
 * a server already listening that the proxy takes over (one made in the sandbox's network
 * namespace by `listenInNamespace`, so that no bridge sits between; the proxy closes it).
 */
export type EgressListen = EgressAddress | { readonly handle: Server };

/** Where a running proxy listens: its unix socket or its TCP address. */
export type EgressAddress = { readonly path: string } | { readonly host: string; readonly port: number };

export interface EgressProxyOptions {
  readonly provider: string;
  readonly sandboxId: string;
  /** The allowlist, or `'block'` (every connection denied). */
  readonly policy: Exclude<ParsedNetworkPolicy, 'allow'>;
  readonly listen: EgressListen;
  /** Where `egress` events go. */
  readonly events: SandboxEmitter;
  /** @default systemEgressNetwork */
  readonly network?: EgressNetwork;
  /** Milliseconds to resolve and dial a destination before the connection is refused. @default 10 000 */
  readonly connectTimeoutMs?: number;
  /**
   * Milliseconds a client has, from connecting, to send a whole request head (HTTP) or SOCKS5
   * handshake; a client that stalls is dropped. @default 10 000
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * Client connections open at once; more are refused (closed at once) so that a sandbox cannot
   * exhaust the host's file descriptors through its proxy. @default 1024
   */
  readonly maxConnections?: number;
}

/** A running egress proxy, one per sandbox. */
export interface EgressProxy {
  /** Where it listens (the TCP port is the one the system chose for port 0; a `handle`'s address). */
  readonly listen: EgressAddress;
  /** Replaces the policy for connections opened from now on (`Sandbox.updateNetwork`). */
  setPolicy(policy: Exclude<ParsedNetworkPolicy, 'allow'>): void;
  /** Stops listening and destroys every connection through it. Idempotent. */
  close(): Promise<void>;
}

/** The header on every response the proxy writes itself: `denied` (policy) or `error` (upstream). */
export const egressHeader = 'x-sandport-egress';

/** Why a destination could not be reached, for the HTTP status and the SOCKS5 reply code. */
export type EgressFailure = 'denied' | 'not-found' | 'refused' | 'unreachable' | 'timeout' | 'failed';

/** The outcome of deciding and dialling a destination. */
type Opened =
  | { readonly ok: true; readonly socket: Socket; readonly address: string }
  | { readonly ok: false; readonly failure: EgressFailure; readonly reason: string; readonly address: string | undefined };

const defaultConnectTimeoutMs = 10_000;
const defaultHandshakeTimeoutMs = 10_000;
const defaultMaxConnections = 1024;

/**
 * One client connection's report: exactly one `egress` event, whichever comes first of a
 * denial (at once), a failure to reach an allowed destination (at once: refused, not
 * resolving, timed out, or the client gone first), or the close of an allowed connection.
 */
class ProxyConnection {
  private reported = false;
  constructor(
    private readonly proxy: EgressProxyCore,
    readonly protocol: EgressProtocol,
    readonly host: string,
    readonly port: number,
  ) {}

  denied(reason: string, address: string | undefined): void {
    this.report({ decision: 'denied', address, reason, bytesSent: 0, bytesReceived: 0, durationMs: 0 });
  }

  /** No connection was made although the policy allowed it (or `failure` says the policy refused it). */
  failed(reason: string, address: string | undefined, failure: EgressFailure = 'failed'): void {
    this.report({ decision: failure === 'denied' ? 'denied' : 'failed', address, reason, bytesSent: 0, bytesReceived: 0, durationMs: 0 });
  }

  allowed(address: string, upstream: Socket, since: number): void {
    this.report({
      decision: 'allowed',
      address,
      reason: undefined,
      bytesSent: upstream.bytesWritten,
      bytesReceived: upstream.bytesRead,
      durationMs: Date.now() - since,
    });
  }

  private report(fields: Pick<EgressEvent, 'decision' | 'address' | 'reason' | 'bytesSent' | 'bytesReceived' | 'durationMs'>): void {
    if (this.reported) return;
    this.reported = true;
    this.proxy.emit({ ...fields, host: this.host, port: this.port, protocol: this.protocol });
  }
}

/** The parts of the proxy its connection handlers use. */
interface EgressProxyCore {
  emit(event: Omit<EgressEvent, 'provider' | 'sandboxId'>): void;
  open(host: string, port: number): Promise<Opened>;
  track(socket: Duplex): void;
  readonly policy: EgressPolicy;
  readonly handshakeTimeoutMs: number;
}

/**
 * Starts a proxy; resolves once it listens. Rejects with `SandboxProviderError` when it cannot
 * listen (a unix socket path that exists already, a TCP port in use), and with
 * `SandboxInvalidArgumentError` on an `'allow'` policy. Nothing of it outlives `close()`.
 */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const network = options.network ?? systemEgressNetwork;
  const connectTimeoutMs = options.connectTimeoutMs ?? defaultConnectTimeoutMs;
  const sockets = new Set<Duplex>();
  const closing = new AbortController();
  let policy = compileEgressPolicy(options.policy);

  const core: EgressProxyCore = {
    get policy() {
      return policy;
    },
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? defaultHandshakeTimeoutMs,
    emit(event) {
      try {
        options.events.emit('egress', { provider: options.provider, sandboxId: options.sandboxId, ...event });
      } catch {
        // A throwing listener does not change the connection's fate, nor take the proxy down.
      }
    },
    open: (host, port) => openDestination(policy, network, host, port, connectTimeoutMs, closing.signal),
    track(socket) {
      if (closing.signal.aborted) {
        socket.destroy();
        return;
      }
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    },
  };

  const http = createHttpServer({ requireHostHeader: false });
  http.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => handleConnect(core, req, socket, head));
  http.on('request', (req: IncomingMessage, res: ServerResponse) => handlePlainRequest(core, req, res));
  http.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    refuseRaw(socket, 501, 'error', 'sandport egress proxy: protocol upgrades through the proxy are not supported; use CONNECT');
  });
  http.on('clientError', (_error: Error, socket: Duplex) => {
    refuseRaw(socket, 400, 'error', 'sandport egress proxy: malformed request');
  });

  const server: Server = createNetServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    core.track(socket);
    socket.on('error', () => socket.destroy());
    acceptConnection(core, http, socket);
  });
  server.maxConnections = options.maxConnections ?? defaultMaxConnections;
  server.listen(listenArgument(options.listen));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (error) {
    // A handed-over listener is the proxy's from the start: it does not outlive a failed start.
    if ('handle' in options.listen) options.listen.handle.close();
    const where = describeListen(options.listen);
    throw new SandboxProviderError({
      provider: options.provider,
      message: `the egress proxy of sandbox ${options.sandboxId} could not listen on ${where}: ${describeError(error)}`,
      cause: error,
    });
  }
  const address = server.address();
  const listen: EgressAddress =
    typeof address === 'object' && address !== null
      ? { host: address.address, port: address.port }
      : { path: 'path' in options.listen ? options.listen.path : String(address) };

  let closed: Promise<void> | undefined;
  return {
    listen,
    setPolicy(next) {
      policy = compileEgressPolicy(next);
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort(new Error('the egress proxy closed'));
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}

function listenArgument(listen: EgressListen): { path: string } | { host: string; port: number } | Server {
  if ('handle' in listen) return listen.handle;
  return 'path' in listen ? { path: listen.path } : { host: listen.host, port: listen.port };
}

function describeListen(listen: EgressListen): string {
  if ('handle' in listen) return 'the listener handed to it';
  return 'path' in listen ? listen.path : `${listen.host} port ${listen.port}`;
}

/** Each client's handshake timer, cleared once its request is known. */
const handshakeTimers = new WeakMap<Duplex, NodeJS.Timeout>();

/**
 * Tells the protocols apart by the first byte (an HTTP method starts with a capital letter,
 * SOCKS5 with 0x05) and hands the socket on, the byte put back. A client that sends nothing, or
 * not a whole request head, within the handshake timeout is dropped.
 */
function acceptConnection(core: EgressProxyCore, http: ReturnType<typeof createHttpServer>, socket: Socket): void {
  const timer = setTimeout(() => socket.destroy(), core.handshakeTimeoutMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  handshakeTimers.set(socket, timer);
  socket.once('data', (first: Buffer) => {
    socket.pause();
    const byte = first[0] ?? 0;
    if (byte >= 0x41 && byte <= 0x5a) {
      socket.unshift(first);
      http.emit('connection', socket);
      socket.resume();
    } else if (byte === 0x05) {
      handleSocks(core, socket, first);
    } else if (byte === 0x04) {
      // SOCKS4: reply "request rejected" in its own format, so the client reports it.
      endAndDrop(socket, Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
    } else {
      endAndDrop(socket, 'sandport egress proxy: speak HTTP proxy (CONNECT or absolute-form requests) or SOCKS5\n');
    }
  });
  socket.resume();
}

/** The handshake is over: the client sent what it wants within the time allowed. */
function handshakeDone(socket: Duplex): void {
  clearTimeout(handshakeTimers.get(socket));
}

/** Writes a last answer and closes, without waiting for the client to close its side. */
function endAndDrop(socket: Duplex, data: Buffer | string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(data);
}

/** Writes a whole HTTP response the proxy makes itself, then closes. */
function refuseRaw(socket: Duplex, status: number, kind: 'denied' | 'error', body: string): void {
  const text = `${body}\n`;
  const reason = { 400: 'Bad Request', 403: 'Forbidden', 501: 'Not Implemented', 502: 'Bad Gateway', 504: 'Gateway Timeout' }[status];
  endAndDrop(
    socket,
    `HTTP/1.1 ${status} ${reason ?? 'Error'}\r\n${egressHeader}: ${kind}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/** The HTTP status for a failure to reach a destination. */
function httpStatus(failure: EgressFailure): number {
  if (failure === 'denied') return 403;
  if (failure === 'timeout') return 504;
  return 502;
}

/**
 * Runs `then` on the outcome of `opening`; a bug in either ends the client's connection and is
 * reported, rather than becoming an unhandled rejection in the provider's process.
 */
async function guarded(
  client: Duplex,
  connection: ProxyConnection,
  opening: Promise<Opened>,
  then: (opened: Opened) => void,
): Promise<void> {
  try {
    then(await opening);
  } catch (error) {
    client.destroy();
    connection.failed(`the egress proxy failed: ${describeError(error)}`, undefined);
  }
}

/** Splits a CONNECT authority (`host:port`, `[v6]:port`). */
function splitAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]+):(\d{1,5})$/.exec(authority);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1], port };
}

function handleConnect(core: EgressProxyCore, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  handshakeDone(socket);
  const target = splitAuthority(req.url ?? '');
  if (target === undefined) {
    refuseRaw(socket, 400, 'error', `sandport egress proxy: CONNECT needs host:port, not ${JSON.stringify(req.url)}`);
    return;
  }
  const connection = new ProxyConnection(core, 'connect', target.host, target.port);
  void guarded(socket, connection, core.open(target.host, target.port), (opened) => {
    if (!opened.ok) {
      connection.failed(opened.reason, opened.address, opened.failure);
      refuseRaw(
        socket,
        httpStatus(opened.failure),
        opened.failure === 'denied' ? 'denied' : 'error',
        `sandport egress proxy: ${opened.reason}`,
      );
      return;
    }
    if (socket.destroyed) {
      opened.socket.destroy();
      connection.failed('the client went away before the destination answered', opened.address);
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    tunnel(core, connection, socket, opened.socket, opened.address, head);
  });
}

/**
 * Joins the client and the destination, with backpressure both ways (`pipe`), half-close
 * passed on, and the `egress` event once both are closed.
 */
function tunnel(core: EgressProxyCore, connection: ProxyConnection, client: Duplex, upstream: Socket, address: string, head: Buffer): void {
  core.track(upstream);
  const since = Date.now();
  upstream.allowHalfOpen = true;
  // A relay must not add Nagle's delay to the small writes of a handshake (a no-op on unix sockets).
  upstream.setNoDelay(true);
  if (client instanceof Socket) client.setNoDelay(true);
  let open = 2;
  const closed = (): void => {
    open -= 1;
    if (open === 0) connection.allowed(address, upstream, since);
  };
  const fail = (): void => {
    client.destroy();
    upstream.destroy();
  };
  // When one side is gone, finish writing to the other and then drop it: a tunnel never
  // outlives either end.
  client.once('close', () => {
    upstream.end(() => upstream.destroy());
    closed();
  });
  upstream.once('close', () => {
    if (!client.destroyed) client.end(() => client.destroy());
    closed();
  });
  client.on('error', fail);
  upstream.on('error', fail);
  upstream.pipe(client);
  guardClientHello(core, connection, client, upstream, address, head);
}

/**
 * Holds the client's first bytes back until they show whether they are a TLS ClientHello and,
 * if so, which server it names; then passes them on and pipes the rest, or refuses the
 * connection when the SNI names a host the policy would not allow (an allowed CONNECT target is
 * no licence to talk TLS to another name at the same address). At most `maxClientHelloBytes`
 * are held. The destination's bytes flow meanwhile, for protocols where the server speaks first.
 */
function guardClientHello(
  core: EgressProxyCore,
  connection: ProxyConnection,
  client: Duplex,
  upstream: Socket,
  address: string,
  head: Buffer,
): void {
  let peeked = head;
  const onData = (chunk: Buffer): void => {
    peeked = peeked.length === 0 ? chunk : Buffer.concat([peeked, chunk]);
    decide();
  };
  const onEnd = (): void => {
    stopPeeking();
    if (peeked.length === 0) {
      upstream.end();
      return;
    }
    refuse(`the client closed in the middle of a TLS ClientHello`);
  };
  const stopPeeking = (): void => {
    client.off('data', onData);
    client.off('end', onEnd);
  };
  const refuse = (reason: string): void => {
    connection.denied(reason, address);
    client.destroy();
    upstream.destroy();
  };
  const decide = (): boolean => {
    const scan = scanClientHello(peeked);
    if (scan.kind === 'incomplete') return false;
    stopPeeking();
    if (scan.kind === 'malformed') {
      refuse(`the TLS ClientHello sent through the tunnel does not parse (${scan.reason})`);
      return true;
    }
    if (scan.kind === 'client-hello' && scan.serverName !== undefined && !sniAllowed(core.policy, connection.host, scan.serverName)) {
      refuse(`the TLS ClientHello names ${scan.serverName} (SNI), not ${connection.host}, and ${scan.serverName} is not allowed`);
      return true;
    }
    upstream.write(peeked);
    client.pipe(upstream);
    return true;
  };
  if (peeked.length > 0 && decide()) return;
  client.on('data', onData);
  client.on('end', onEnd);
  client.resume();
}

/** Whether a ClientHello may name `serverName` in a tunnel to `target`: the same name, or one the policy allows. */
function sniAllowed(policy: EgressPolicy, target: string, serverName: string): boolean {
  const host = parseEgressHost(target);
  const sni = parseEgressHost(serverName);
  if (sni.kind === 'name' && host.kind === 'name' && sni.name === host.name) return true;
  return nameAllowed(policy, serverName);
}

/** The SOCKS5 reply code for a failure to reach a destination. */
function socksCode(failure: EgressFailure): number {
  const codes: Record<EgressFailure, number> = {
    denied: socksReply.notAllowed,
    'not-found': socksReply.hostUnreachable,
    refused: socksReply.connectionRefused,
    unreachable: socksReply.networkUnreachable,
    timeout: socksReply.ttlExpired,
    failed: socksReply.generalFailure,
  };
  return codes[failure];
}

/** More than any SOCKS5 greeting plus request can be (2 + 255, then 7 + 255): a client past it is not speaking SOCKS5. */
const maxSocksHandshakeBytes = 600;

/** A SOCKS5 client: method negotiation, one CONNECT request, then the same tunnel as CONNECT. */
function handleSocks(core: EgressProxyCore, socket: Socket, first: Buffer): void {
  let buffer = first;
  let greeted = false;
  const onData = (chunk: Buffer): void => {
    buffer = Buffer.concat([buffer, chunk]);
    step();
  };
  const step = (): void => {
    if (buffer.length > maxSocksHandshakeBytes) {
      socket.destroy();
      return;
    }
    if (!greeted) {
      const greeting = parseSocksGreeting(buffer);
      if (greeting.kind === 'incomplete') return;
      if (greeting.kind === 'error') {
        endAndDrop(socket, greeting.reply);
        return;
      }
      socket.write(greeting.reply);
      buffer = buffer.subarray(greeting.consumed);
      greeted = true;
    }
    const request = parseSocksRequest(buffer);
    if (request.kind === 'incomplete') return;
    socket.off('data', onData);
    socket.pause();
    if (request.kind === 'error') {
      endAndDrop(socket, request.reply);
      return;
    }
    handshakeDone(socket);
    const rest = buffer.subarray(request.consumed);
    const connection = new ProxyConnection(core, 'socks5', request.host, request.port);
    void guarded(socket, connection, core.open(request.host, request.port), (opened) => {
      if (!opened.ok) {
        connection.failed(opened.reason, opened.address, opened.failure);
        endAndDrop(socket, socksResponse(socksCode(opened.failure)));
        return;
      }
      if (socket.destroyed) {
        opened.socket.destroy();
        connection.failed('the client went away before the destination answered', opened.address);
        return;
      }
      socket.write(socksResponse(socksReply.succeeded));
      tunnel(core, connection, socket, opened.socket, opened.address, rest);
    });
  };
  socket.on('data', onData);
  step();
  socket.resume();
}

/** Hop-by-hop headers, never forwarded (RFC 9110 §7.6.1, plus the proxy's own). */
const hopByHop = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

function forwardedHeaders(raw: string[], extraDropped: Set<string>): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let index = 0; index + 1 < raw.length; index += 2) {
    const name = raw[index] ?? '';
    const lower = name.toLowerCase();
    if (!hopByHop.has(lower) && !extraDropped.has(lower)) pairs.push([name, raw[index + 1] ?? '']);
  }
  return pairs;
}

/** The header names a `Connection` header lists, which are hop-by-hop too. */
function connectionListed(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    text
      .split(',')
      .map((part) => part.trim().toLowerCase())
      .filter((part) => part !== ''),
  );
}

/** A plain HTTP request in absolute form (`GET http://host/path`): checked, then sent on with `Connection: close`. */
function handlePlainRequest(core: EgressProxyCore, req: IncomingMessage, res: ServerResponse): void {
  handshakeDone(req.socket);
  const refuse = (status: number, kind: 'denied' | 'error', body: string): void => {
    res.writeHead(status, { [egressHeader]: kind, 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end(`sandport egress proxy: ${body}\n`);
  };
  let url: URL | undefined;
  try {
    url = /^[a-z][a-z0-9+.-]*:\/\//i.test(req.url ?? '') ? new URL(req.url ?? '') : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined) {
    refuse(400, 'error', `this is a proxy: send absolute-form requests (GET http://host/path), not ${JSON.stringify(req.url)}`);
    return;
  }
  if (url.protocol !== 'http:') {
    refuse(400, 'error', `only http: URLs are forwarded as requests; use CONNECT for ${url.protocol}`);
    return;
  }
  const port = url.port === '' ? 80 : Number(url.port);
  const connection = new ProxyConnection(core, 'http', url.hostname, port);
  void guarded(req.socket, connection, core.open(url.hostname, port), (opened) => {
    if (!opened.ok) {
      connection.failed(opened.reason, opened.address, opened.failure);
      refuse(httpStatus(opened.failure), opened.failure === 'denied' ? 'denied' : 'error', opened.reason);
      return;
    }
    if (req.socket.destroyed) {
      opened.socket.destroy();
      connection.failed('the client went away before the destination answered', opened.address);
      return;
    }
    forwardRequest(core, connection, req, res, url, opened.socket, opened.address);
  });
}

function forwardRequest(
  core: EgressProxyCore,
  connection: ProxyConnection,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  upstream: Socket,
  address: string,
): void {
  core.track(upstream);
  const since = Date.now();
  const headers = forwardedHeaders(req.rawHeaders, connectionListed(req.headers.connection));
  // The Host the destination sees is the one that was allowed, not whatever the client wrote.
  headers.unshift(['Host', url.host]);
  headers.push(['Connection', 'close']);
  const outgoing = httpRequest({
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers: headers.flat(),
    setHost: false,
    createConnection: () => upstream,
  });
  upstream.once('close', () => connection.allowed(address, upstream, since));
  // The client gone (or the response done: `Connection: close`) ends the upstream request too.
  res.once('close', () => upstream.destroy());
  outgoing.on('error', (error) => {
    upstream.destroy();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { [egressHeader]: 'error', 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end(`sandport egress proxy: ${url.host} (${address}) failed mid-request: ${describeError(error)}\n`);
  });
  outgoing.on('response', (incoming) => {
    const responseHeaders = forwardedHeaders(incoming.rawHeaders, connectionListed(incoming.headers.connection));
    responseHeaders.push(['Connection', 'close']);
    res.writeHead(incoming.statusCode ?? 502, incoming.statusMessage, responseHeaders.flat());
    incoming.once('error', () => res.destroy());
    incoming.pipe(res);
  });
  req.pipe(outgoing);
}

/** A person-readable account of a socket or resolver error, with its code. */
export function describeError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'the name does not resolve',
    EAI_AGAIN: 'the name could not be resolved now',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
  };
  if (typeof code === 'string') return `${known[code] ?? (error as Error).message} (${code})`;
  return error instanceof Error ? error.message : String(error);
}

function failureOf(error: unknown): EgressFailure {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA' || code === 'EAI_NONAME') return 'not-found';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'unreachable';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'failed';
}

/**
 * Decides a destination under `policy` and, when allowed, dials it: an address literal is
 * judged alone; a name not in `allowDomains` is resolved only when `allowCidrs` could still
 * admit it (so a denied name causes no DNS query, nothing to exfiltrate data through), and
 * every address it resolves to is judged, the allowed ones dialled in order.
 */
async function openDestination(
  policy: EgressPolicy,
  network: EgressNetwork,
  host: string,
  port: number,
  timeoutMs: number,
  closing: AbortSignal,
): Promise<Opened> {
  const parsed = parseEgressHost(host);
  if (parsed.kind === 'invalid') return { ok: false, failure: 'denied', reason: parsed.reason, address: undefined };
  // One deadline for resolving and dialling together.
  const signal = AbortSignal.any([closing, AbortSignal.timeout(timeoutMs)]);
  let candidates: string[];
  if (parsed.kind === 'address') {
    const verdict = decideAddress(policy, parsed.address, false);
    if (!verdict.allowed) return { ok: false, failure: 'denied', reason: verdict.reason, address: parsed.address };
    candidates = [parsed.address];
  } else {
    const byName = nameAllowed(policy, parsed.name);
    if (!byName && policy.blocks.length === 0) {
      return { ok: false, failure: 'denied', reason: `${parsed.name} is not in allowDomains`, address: undefined };
    }
    let resolved: string[];
    try {
      resolved = await network.resolve(parsed.name, signal);
    } catch (error) {
      return failed(error, signal, `${parsed.name} could not be resolved`, undefined, timeoutMs);
    }
    const addresses = resolved.map((address) => normalizeAddress(address) ?? address);
    const verdicts = addresses.map((address) => ({ address, verdict: decideAddress(policy, address, byName) }));
    candidates = verdicts.filter((entry) => entry.verdict.allowed).map((entry) => entry.address);
    if (candidates.length === 0) {
      const first = verdicts[0];
      const why = first === undefined || first.verdict.allowed ? 'resolves to no address' : `resolves to ${first.verdict.reason}`;
      const reason = byName ? `${parsed.name} ${why}` : `${parsed.name} is not in allowDomains and ${why}`;
      return { ok: false, failure: 'denied', reason, address: first?.address };
    }
  }
  let lastError: unknown;
  for (const address of candidates) {
    try {
      const socket = await network.dial(address, port, signal);
      return { ok: true, socket, address };
    } catch (error) {
      lastError = error;
      if (signal.aborted) break;
    }
  }
  return failed(lastError, signal, `could not connect to ${host} port ${port}`, candidates.at(-1), timeoutMs);
}

function failed(error: unknown, signal: AbortSignal, what: string, address: string | undefined, timeoutMs: number): Opened {
  if (signal.aborted) {
    const timeout = (signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
    return {
      ok: false,
      failure: timeout ? 'timeout' : 'failed',
      reason: timeout ? `${what}: no answer within ${timeoutMs} ms` : `${what}: the egress proxy closed`,
      address,
    };
  }
  const at = address === undefined ? '' : ` (${address})`;
  return { ok: false, failure: failureOf(error), reason: `${what}${at}: ${describeError(error)}`, address };
}
