/**
 * Our own client for the API server's exec and port-forward WebSockets (client-node's `Exec` has
 * no output backpressure, crashes the process on a server CLOSE frame and loses the body of a
 * refused upgrade).
 *
 * Exec: subprotocol `v5.channel.k8s.io` only (v4 cannot half-close stdin: a file write would
 * never end), every frame `[channel, ...bytes]` (0 stdin, 1 stdout, 2 stderr, 3 the Status with
 * the exit code, 255 close: `[255, 0]` ends stdin). Output is two bounded Web streams: while
 * either holds more than its high-water mark, the socket is paused, so TCP backpressure reaches
 * the API server and the command (memory stays bounded for a slow reader). A cancelled side is
 * discarded so it never stalls the other.
 *
 * Port-forward: subprotocol `v4.channel.k8s.io`, channel 0 data and 1 errors, each starting with
 * the port as two little-endian bytes; one WebSocket per TCP connection.
 *
 * TLS and auth are the kube config's (`KubeConfig.applyToHTTPSOptions`: CA, client certs,
 * tokens, exec plugins, proxies).
 */
import type { Socket } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type WebSocketType from 'ws';
import { SandboxInvalidArgumentError, SandboxProviderError, type SandboxError } from '../../src/kit/index.js';
import { KubernetesApiError, mapKubernetesError, parseStatusBody } from './kubernetes-errors.js';
import type { KubernetesExecStatus } from './kubernetes-options.js';

/** The exec subprotocol: v5 is the one with a stdin half-close (Kubernetes ≥ 1.30). */
export const execProtocol = 'v5.channel.k8s.io';
export const portForwardProtocol = 'v4.channel.k8s.io';
export const channel = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4, close: 255 } as const;

/** Bytes an output stream holds before the socket pauses. */
export const outputHighWaterBytes = 256 * 1024;
/** Bytes of stdin that may wait in the socket before a write waits for it. */
const stdinAheadBytes = 1024 * 1024;
/** Largest stdin frame: large writes are split so the server never sees a huge message. */
const stdinFrameBytes = 256 * 1024;
/** Bytes a command may write to a cancelled stream before `onKeepsWriting`. */
const discardedBytesLimit = 1024 * 1024;

/** The `ws` module's WebSocket class. */
export type WebSocketClass = typeof WebSocketType;

/** Where and how to reach the API server. */
export interface KubernetesConnection {
  kubeConfig: KubeConfig;
  WebSocket: WebSocketClass;
}

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  argv: readonly string[];
  /** Open stdin (the `stdin=true` flag). @default true */
  stdin?: boolean;
  signal?: AbortSignal | undefined;
  /** Called once when the command wrote more than 1 MiB to a cancelled output since. */
  onKeepsWriting?: () => void;
}

/** A running exec: its streams and its Status. */
export interface ExecSession {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * The Status frame (`undefined` when the socket closed without one: a proxy or idle timeout cut
   * the stream, or the server went away). Never rejects.
   */
  readonly status: Promise<KubernetesExecStatus | undefined>;
  /** Closes the socket (kills nothing in the pod). Idempotent. */
  close(): void;
  /**
   * The command was killed: let the socket run ahead of a slow (or absent) reader up to 32 MiB
   * per stream, so the rest of its output in flight and its Status arrive. Idempotent.
   */
  drain(): void;
}

/**
 * Bytes a stream may hold once the command was killed (only what was in flight remains). What is
 * in flight can exceed 8 MiB: the server's socket buffer plus loopback TCP send and receive
 * buffers of several MiB each (CI saw a kill's Status stuck behind them at 8 MiB).
 */
const drainBytes = 32 * 1024 * 1024;

/** The API server's base URL as a WebSocket URL plus a path and query. */
export function kubernetesSocketUrl(server: string, path: string, query: URLSearchParams): string {
  const base = new URL(server);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const prefix = base.pathname.replace(/\/$/, '');
  return `${base.origin.replace(/^http/, 'ws')}${prefix}${path}?${query.toString()}`;
}

/** The exec URL's query: every flag present as `true`/`false`, each argv element a repeated `command`. */
export function execQuery(request: Pick<ExecRequest, 'container' | 'argv' | 'stdin'>): URLSearchParams {
  const query = new URLSearchParams();
  query.set('stdout', 'true');
  query.set('stderr', 'true');
  query.set('stdin', String(request.stdin !== false));
  query.set('tty', 'false');
  query.set('container', request.container);
  for (const argument of request.argv) query.append('command', argument);
  return query;
}

/** An open socket whose early frames (and close) are kept until the caller attaches. */
export interface OpenedSocket {
  readonly socket: WebSocketType;
  /** Replays what arrived so far, then passes on every frame, and the end once. */
  attach(onMessage: (data: Buffer) => void, onEnd: (error: Error | undefined) => void): void;
}

/** Opens a WebSocket to the API server with the kube config's TLS and auth, or rejects with the refusal's Status mapped. */
export async function openKubernetesSocket(
  connection: KubernetesConnection,
  path: string,
  query: URLSearchParams,
  protocol: string,
  context: { operation: string; sandboxId?: string | undefined; signal?: AbortSignal | undefined },
): Promise<OpenedSocket> {
  const cluster = connection.kubeConfig.getCurrentCluster();
  if (!cluster) throw new SandboxProviderError({ message: 'The kube config has no current cluster', provider: 'kubernetes' });
  const options: WebSocketType.ClientOptions = { perMessageDeflate: false, handshakeTimeout: 30_000 };
  await connection.kubeConfig.applyToHTTPSOptions(options);
  context.signal?.throwIfAborted();
  const url = kubernetesSocketUrl(cluster.server, path, query);
  const socket = new connection.WebSocket(url, [protocol], options);
  socket.binaryType = 'nodebuffer';
  // Frames can arrive before the caller's continuation runs: they wait here, with a close.
  const early: Buffer[] = [];
  let earlyEnd: { error: Error | undefined } | undefined;
  const keep = (data: Buffer) => early.push(data);
  const keepClose = () => (earlyEnd ??= { error: undefined });
  const keepError = (error: Error) => (earlyEnd ??= { error });
  socket.on('message', keep);
  const opened: OpenedSocket = {
    socket,
    attach(onMessage, onEnd) {
      socket.off('message', keep);
      socket.off('close', keepClose);
      socket.off('error', keepError);
      for (const data of early.splice(0)) onMessage(data);
      if (earlyEnd) return onEnd(earlyEnd.error);
      socket.on('message', onMessage);
      socket.on('close', () => onEnd(undefined));
      socket.on('error', (error: Error) => onEnd(error));
    },
  };
  return new Promise<OpenedSocket>((resolve, reject) => {
    const onAbort = () => {
      socket.terminate();
      reject(context.signal!.reason);
    };
    context.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => context.signal?.removeEventListener('abort', onAbort);
    socket.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', () => undefined);
      response.on('end', () => {
        settle();
        socket.terminate();
        const body = parseStatusBody(Buffer.concat(chunks).toString('utf8'));
        reject(mapKubernetesError(new KubernetesApiError(response.statusCode ?? 500, body, context.operation), context));
      });
    });
    socket.once('open', () => {
      settle();
      if (socket.protocol !== protocol) {
        socket.terminate();
        reject(protocolError(protocol, socket.protocol));
        return;
      }
      socket.on('close', keepClose);
      socket.on('error', keepError);
      resolve(opened);
    });
    socket.once('error', (error: Error) => {
      settle();
      if (/no subprotocol|invalid subprotocol/i.test(error.message)) reject(protocolError(protocol, undefined, error));
      else reject(mapKubernetesError(error, context));
    });
  });
}

function protocolError(wanted: string, got: string | undefined, cause?: unknown): SandboxError {
  return new SandboxProviderError({
    message:
      wanted === execProtocol
        ? `The API server did not accept the ${execProtocol} exec protocol${got ? ` (it chose ${got})` : ''}: sandport needs Kubernetes 1.30 or later, where stdin can be closed over WebSocket`
        : `The API server did not accept the ${wanted} port-forward protocol${got ? ` (it chose ${got})` : ''}`,
    provider: 'kubernetes',
    cause,
  });
}

/** One output channel: a bounded, pull-based Web stream. */
class Output {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #done = false;
  cancelled = false;

  constructor(onPull: () => void, onCancel: () => void) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: onPull,
        cancel: () => {
          this.#done = true;
          this.cancelled = true;
          onCancel();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: outputHighWaterBytes }),
    );
  }

  /** Whether at least `limit` bytes wait for the reader. */
  holds(limit: number): boolean {
    return !this.#done && (this.#controller.desiredSize ?? 0) <= outputHighWaterBytes - limit;
  }

  /** Queues a chunk; false when it was discarded. */
  push(chunk: Uint8Array): boolean {
    if (this.#done) return false;
    this.#controller.enqueue(chunk);
    return true;
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.close();
  }

  error(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.error(error);
  }
}

/** Starts an exec; resolves once the socket is open (the command is starting). */
export async function openKubernetesExec(connection: KubernetesConnection, request: ExecRequest): Promise<ExecSession> {
  const path = `/api/v1/namespaces/${encodeURIComponent(request.namespace)}/pods/${encodeURIComponent(request.pod)}/exec`;
  const opened = await openKubernetesSocket(connection, path, execQuery(request), execProtocol, {
    operation: 'exec',
    sandboxId: request.pod,
    signal: request.signal,
  });
  return new ExecSessionImpl(opened, request);
}

class ExecSessionImpl implements ExecSession {
  readonly #stdout: Output;
  readonly #stderr: Output;
  readonly stdin: WritableStream<Uint8Array>;
  readonly status: Promise<KubernetesExecStatus | undefined>;
  #resolveStatus!: (status: KubernetesExecStatus | undefined) => void;
  #paused = false;
  #limit = outputHighWaterBytes;
  #closed = false;
  #discarded = 0;
  readonly #waiters = new Set<() => void>();

  private readonly socket: WebSocketType;

  constructor(
    opened: OpenedSocket,
    private readonly request: ExecRequest,
  ) {
    this.socket = opened.socket;
    this.status = new Promise((resolve) => (this.#resolveStatus = resolve));
    const released = () => this.#releaseIfDone();
    this.#stdout = new Output(() => this.#resumeIfRoom(), released);
    this.#stderr = new Output(() => this.#resumeIfRoom(), released);
    this.stdin = this.#stdinStream();
    opened.attach(
      (data) => this.#take(data),
      (error) => this.#ended(error),
    );
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#stdout.stream;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#stderr.stream;
  }

  close(): void {
    if (this.socket.readyState === this.socket.CLOSED) return;
    this.socket.close(1000);
    // A peer that never answers the close handshake must not keep the socket.
    setTimeout(() => this.socket.terminate(), 2_000).unref();
  }

  drain(): void {
    this.#limit = drainBytes;
    this.#resumeIfRoom();
  }

  #take(data: Buffer): void {
    if (data.length === 0) return;
    const payload = data.subarray(1);
    switch (data[0]) {
      case channel.stdout:
        this.#push(this.#stdout, payload);
        return;
      case channel.stderr:
        this.#push(this.#stderr, payload);
        return;
      case channel.status: {
        const status = (parseStatusBody(payload.toString('utf8')) ?? {}) as KubernetesExecStatus;
        // All output precedes the Status: the streams end here, not at the close.
        this.#stdout.end();
        this.#stderr.end();
        this.#resolveStatus(status);
        this.close();
        return;
      }
      default:
        // 255 (a server-side close of a stream) and unknown channels carry nothing for us.
        return;
    }
  }

  #push(output: Output, payload: Buffer): void {
    if (payload.length === 0) return; // the kubelet's "connected" frame
    if (!output.push(payload) && output.cancelled) {
      const before = this.#discarded;
      this.#discarded += payload.length;
      if (before <= discardedBytesLimit && this.#discarded > discardedBytesLimit) this.request.onKeepsWriting?.();
    }
    if (!this.#paused && (this.#stdout.holds(this.#limit) || this.#stderr.holds(this.#limit))) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  #resumeIfRoom(): void {
    if (!this.#paused || this.#stdout.holds(this.#limit) || this.#stderr.holds(this.#limit)) return;
    this.#paused = false;
    this.socket.resume();
  }

  #releaseIfDone(): void {
    // A cancelled side is discarded: let the socket run so the other side and the Status arrive.
    this.#resumeIfRoom();
  }

  #ended(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    if (error) {
      const mapped = mapKubernetesError(error, { operation: 'exec stream', sandboxId: this.request.pod });
      this.#stdout.error(mapped);
      this.#stderr.error(mapped);
    } else {
      this.#stdout.end();
      this.#stderr.end();
    }
    this.#resolveStatus(undefined);
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }

  /** Resolves once the socket's send queue is below the limit (or it closed). */
  #drained(): Promise<void> {
    if (this.#closed || this.socket.bufferedAmount <= stdinAheadBytes) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.#closed || this.socket.bufferedAmount <= stdinAheadBytes) {
          this.#waiters.delete(resolve);
          resolve();
        } else setTimeout(check, 5);
      };
      this.#waiters.add(resolve);
      setTimeout(check, 5);
    });
  }

  /**
   * stdin: frames on channel 0, at most `stdinAheadBytes` queued in the socket. Once the exec has
   * ended, writes go nowhere (as into a pipe nobody reads): they resolve. `close()` is the v5
   * half-close `[255, 0]`.
   */
  #stdinStream(): WritableStream<Uint8Array> {
    const socket = this.socket;
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (!(chunk instanceof Uint8Array))
          throw new SandboxInvalidArgumentError({
            message: 'stdin accepts Uint8Array chunks only',
            argument: 'stdin',
            provider: 'kubernetes',
          });
        for (let offset = 0; offset < chunk.byteLength; offset += stdinFrameBytes) {
          if (this.#closed || socket.readyState !== socket.OPEN) return;
          const piece = chunk.subarray(offset, offset + stdinFrameBytes);
          const frame = Buffer.allocUnsafe(piece.byteLength + 1);
          frame[0] = channel.stdin;
          frame.set(piece, 1);
          socket.send(frame);
          await this.#drained();
        }
      },
      close: async () => {
        if (this.#closed || socket.readyState !== socket.OPEN) return;
        await new Promise<void>((resolve) => socket.send(Buffer.from([channel.close, channel.stdin]), () => resolve()));
      },
      abort: () => {
        if (!this.#closed && socket.readyState === socket.OPEN) socket.send(Buffer.from([channel.close, channel.stdin]));
      },
    });
  }
}

export interface PortForwardRequest {
  namespace: string;
  pod: string;
  port: number;
}

/**
 * Relays one accepted TCP connection to a port of the pod over its own port-forward WebSocket,
 * with backpressure both ways (the socket pauses while the other side's queue is full). Resolves
 * when the relay is set up; a refused upgrade destroys `client` and rejects.
 */
export async function relayPortForward(connection: KubernetesConnection, request: PortForwardRequest, client: Socket): Promise<void> {
  const path = `/api/v1/namespaces/${encodeURIComponent(request.namespace)}/pods/${encodeURIComponent(request.pod)}/portforward`;
  const query = new URLSearchParams({ ports: String(request.port) });
  client.pause();
  let opened: OpenedSocket;
  try {
    opened = await openKubernetesSocket(connection, path, query, portForwardProtocol, { operation: 'tunnel', sandboxId: request.pod });
  } catch (error) {
    client.destroy();
    throw error;
  }
  const { socket } = opened;
  // Each channel's first frame starts with the port (uint16 little-endian): stripped once.
  const prefixLeft = [2, 2];
  let failure = '';
  const onMessage = (data: Buffer) => {
    const id = data[0];
    if (id !== 0 && id !== 1) return;
    let payload = data.subarray(1);
    const strip = Math.min(prefixLeft[id]!, payload.length);
    prefixLeft[id]! -= strip;
    payload = payload.subarray(strip);
    if (payload.length === 0) return;
    if (id === 1) {
      failure += payload.toString('utf8');
      return;
    }
    if (!client.write(payload)) socket.pause();
  };
  client.on('drain', () => socket.resume());
  client.on('data', (chunk: Buffer) => {
    if (socket.readyState !== socket.OPEN) return;
    const frame = Buffer.allocUnsafe(chunk.length + 1);
    frame[0] = 0;
    frame.set(chunk, 1);
    socket.send(frame);
    if (socket.bufferedAmount > stdinAheadBytes) {
      client.pause();
      const check = () =>
        socket.bufferedAmount <= stdinAheadBytes || socket.readyState !== socket.OPEN ? client.resume() : setTimeout(check, 5);
      setTimeout(check, 5);
    }
  });
  client.on('end', () => socket.close(1000));
  client.on('error', () => socket.terminate());
  client.on('close', () => socket.readyState === socket.OPEN && socket.close(1000));
  opened.attach(onMessage, (error) => (failure || error ? client.destroy() : client.end()));
  client.resume();
}
