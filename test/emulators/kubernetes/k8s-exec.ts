/**
 * `pods/exec` and `pods/portforward` over WebSocket, framed as the kubelet frames them: every
 * binary message is `[channel, ...bytes]`.
 *
 * Exec (`v5.channel.k8s.io` preferred, `v4.channel.k8s.io` served): channel 0 stdin, 1 stdout,
 * 2 stderr, 3 the final `Status` (exit code in `details.causes[reason=ExitCode]`), 4 terminal
 * resize (`{"Width","Height"}`), and on v5 the client's `[255, 0]` closing stdin. An empty stdout
 * frame goes first, as the kubelet sends once connected; the emulator never sends `[255, n]`
 * (client-node 1.4 crashes on it). Backpressure: the emulator stops reading the command's output
 * while more than `highWaterMark` bytes are queued on the socket, so a slow reader stalls the
 * command, not the emulator's memory. A missing program is an `InternalError` status, as with
 * containerd. The client closing the socket kills nothing (as on a cluster): stdin gets EOF and
 * the output is drained and dropped.
 *
 * Port-forward (`v4.channel.k8s.io`, or no subprotocol): per requested port i, channel 2i carries
 * data and 2i+1 errors; each starts with the port as uint16 little-endian. One socket is one TCP
 * connection per port, to the pod's loopback: a declared `containerPort` through the local
 * provider's tunnel, any other port through `socat` run inside the sandbox.
 */
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { SandboxInvalidArgumentError, type SandboxProcess } from '../../../src/kit/index.js';
import { checkToken, parseResourcePath } from './k8s-http.js';
import type { Kubelet, PodRuntime } from './k8s-kubelet.js';
import { pods } from './k8s-resources.js';
import { KubeStatusError, statusBody } from './k8s-status.js';
import type { KubeStore } from './k8s-store.js';

/** Bytes queued on a socket before the emulator stops reading the command's output. */
export const highWaterMark = 1024 * 1024;
const maxFrame = 256 * 1024;

export interface StreamContext {
  readonly store: KubeStore;
  readonly kubelet: Kubelet;
  readonly token: string;
  readonly calls: Map<string, number>;
}

/** Answers a failed upgrade with a plain HTTP `Status`, as the API server does before the 101. */
function refuse(socket: Duplex, error: KubeStatusError): void {
  const body = JSON.stringify(error.toStatus());
  const reason =
    { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' }[error.code] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${error.code} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function pickProtocol(offered: Set<string>, served: readonly string[]): string | undefined {
  return served.find((protocol) => offered.has(protocol));
}

/** Sends one frame; resolves when the socket has room for more (the backpressure point). */
function sendFrame(ws: WebSocket, channel: number, data: Uint8Array): Promise<void> {
  const frame = Buffer.allocUnsafe(data.byteLength + 1);
  frame[0] = channel;
  frame.set(data, 1);
  return new Promise((resolve) => {
    if (ws.readyState !== WebSocket.OPEN) return resolve();
    ws.send(frame, { binary: true }, () => undefined);
    if (ws.bufferedAmount <= highWaterMark) return resolve();
    // Wait for the socket to drain below the mark.
    const socket = (ws as unknown as { _socket: Socket })._socket;
    const check = () => {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount <= highWaterMark) {
        socket.off('drain', check);
        ws.off('close', check);
        resolve();
      }
    };
    socket.on('drain', check);
    ws.on('close', check);
  });
}

async function pump(ws: WebSocket, channel: number, stream: ReadableStream<Uint8Array>, clientGone: () => boolean): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (clientGone()) continue;
      for (let offset = 0; offset < value.byteLength; offset += maxFrame)
        await sendFrame(ws, channel, value.subarray(offset, offset + maxFrame));
    }
  } catch {
    // The sandbox went away mid-stream.
  }
}

export class KubeStreams {
  private readonly server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });

  constructor(private readonly context: StreamContext) {}

  /** The HTTP server's `upgrade` listener. */
  handleUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      this.route(request, socket, head);
    } catch (error) {
      if (error instanceof KubeStatusError) refuse(socket, error);
      else {
        console.error('[kubernetes emulator] upgrade failed:', error);
        refuse(socket, new KubeStatusError('InternalError', (error as Error).message));
      }
    }
  };

  private route(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    checkToken(request.headers, this.context.token);
    const url = new URL(request.url ?? '/', 'http://emulator');
    const parsed = parseResourcePath(url.pathname);
    if (
      !parsed ||
      parsed.resource !== 'pods' ||
      parsed.group !== '' ||
      !parsed.name ||
      !['exec', 'portforward', 'attach'].includes(parsed.subresource ?? '')
    ) {
      throw new KubeStatusError('NotFound', `the Kubernetes emulator does not implement a WebSocket at ${url.pathname}`);
    }
    if (parsed.subresource === 'attach') throw new KubeStatusError('NotFound', `the Kubernetes emulator does not implement pods/attach`);
    const key = `GET pods/${parsed.subresource}`;
    this.context.calls.set(key, (this.context.calls.get(key) ?? 0) + 1);
    const pod = this.context.store.get(pods, parsed.namespace, parsed.name);
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      throw new KubeStatusError(
        'BadRequest',
        `cannot ${parsed.subresource === 'exec' ? 'exec into' : 'port-forward to'} a container in a completed pod; current phase is ${phase}`,
      );
    }
    const runtime = this.context.kubelet.runtime(pod.metadata.uid);
    if (!runtime?.local || runtime.done || phase !== 'Running') {
      throw new KubeStatusError(
        'BadRequest',
        `pod ${parsed.name} is not running (phase ${phase ?? 'unknown'}): no container to ${parsed.subresource === 'exec' ? 'exec into' : 'forward to'}`,
      );
    }
    const offered = new Set(
      (request.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((protocol) => protocol.trim())
        .filter((protocol) => protocol !== ''),
    );
    if (parsed.subresource === 'exec') {
      const containers = (pod.spec as { containers: Array<{ name: string }> }).containers;
      const container = url.searchParams.get('container');
      if (container && container !== containers[0]!.name)
        throw new KubeStatusError('BadRequest', `container ${container} is not valid for pod ${parsed.name}`);
      const command = url.searchParams.getAll('command');
      if (command.length === 0) throw new KubeStatusError('BadRequest', 'you must specify at least 1 command');
      const protocol = pickProtocol(offered, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
      if (!protocol) {
        throw new KubeStatusError(
          'BadRequest',
          `the Kubernetes emulator serves exec over v5.channel.k8s.io and v4.channel.k8s.io; offered: ${[...offered].join(', ') || '(none)'}`,
        );
      }
      this.server.handleUpgrade(request, socket, head, (ws) => void this.exec(ws, protocol, runtime, command, url));
      return;
    }
    const ports = (url.searchParams.getAll('ports').join(',') || '')
      .split(',')
      .filter((port) => port !== '')
      .map(Number);
    if (ports.length === 0 || ports.some((port) => !Number.isInteger(port) || port < 1 || port > 65535)) {
      throw new KubeStatusError(
        'BadRequest',
        `invalid port forward request: ports ${JSON.stringify(url.searchParams.getAll('ports'))} are not 1-65535`,
      );
    }
    if (offered.size > 0 && !offered.has('v4.channel.k8s.io')) {
      throw new KubeStatusError(
        'BadRequest',
        `the Kubernetes emulator serves port-forward over v4.channel.k8s.io (or no subprotocol); offered: ${[...offered].join(', ')}`,
      );
    }
    this.server.handleUpgrade(request, socket, head, (ws) => void this.portForward(ws, runtime, ports));
  }

  private async exec(ws: WebSocket, protocol: string, runtime: PodRuntime, command: string[], url: URL): Promise<void> {
    const flag = (name: string) => url.searchParams.get(name) === 'true' || url.searchParams.get(name) === '1';
    const wantStdin = flag('stdin');
    const tty = flag('tty');
    let gone = false;
    ws.on('close', () => (gone = true));
    ws.on('error', () => (gone = true));
    // Frames that arrive before the process exists wait here.
    const early: RawData[] = [];
    const onEarly = (data: RawData) => early.push(data);
    ws.on('message', onEarly);
    let process: SandboxProcess;
    try {
      process = await runtime.local!.exec(command, { ...(tty ? { pty: { cols: 80, rows: 24 } } : {}) });
    } catch (error) {
      const message =
        error instanceof SandboxInvalidArgumentError && error.argument === 'command'
          ? `Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: "${command[0]}": executable file not found in $PATH: unknown`
          : `Internal error occurred: error executing command in container: ${(error as Error).message}`;
      await sendFrame(ws, 1, new Uint8Array(0));
      await sendFrame(ws, 3, Buffer.from(JSON.stringify(statusBody('InternalError', message, 500, { causes: [{ message }] }))));
      ws.close(1000);
      return;
    }
    await sendFrame(ws, 1, new Uint8Array(0));
    const stdin = process.stdin.getWriter();
    stdin.closed.catch(() => undefined);
    let stdinQueue: Promise<unknown> = Promise.resolve();
    let stdinClosed = false;
    const closeStdin = () => {
      if (stdinClosed) return;
      stdinClosed = true;
      stdinQueue = stdinQueue.then(() => stdin.close()).catch(() => undefined);
    };
    if (!wantStdin) closeStdin();
    let pending = 0;
    const onMessage = (data: RawData) => {
      const frame = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (frame.byteLength === 0) return;
      const channel = frame[0];
      const payload = frame.subarray(1);
      if (channel === 0 && wantStdin && !stdinClosed && payload.byteLength > 0) {
        pending += payload.byteLength;
        // Inbound backpressure: stop reading the socket while the command is behind on stdin.
        if (pending > highWaterMark) ws.pause();
        const bytes = Uint8Array.from(payload);
        stdinQueue = stdinQueue
          .then(() => stdin.write(bytes))
          .catch(() => undefined)
          .finally(() => {
            pending -= bytes.byteLength;
            if (pending <= highWaterMark && ws.isPaused) ws.resume();
          });
      } else if (channel === 255 && protocol === 'v5.channel.k8s.io' && payload[0] === 0) closeStdin();
      else if (channel === 4 && process.resize) {
        try {
          const size = JSON.parse(payload.toString('utf8')) as { Width?: number; Height?: number };
          const resize = process.resize.bind(process);
          // In line with stdin, so input sent after a resize meets the new size.
          if (size.Width && size.Height)
            stdinQueue = stdinQueue.then(() => resize({ cols: size.Width!, rows: size.Height! })).catch(() => undefined);
        } catch {
          // A malformed resize is dropped, as the kubelet logs and drops it.
        }
      }
    };
    ws.off('message', onEarly);
    ws.on('message', onMessage);
    for (const data of early) onMessage(data);
    ws.on('close', closeStdin);
    const outputs = [pump(ws, 1, process.stdout, () => gone), pump(ws, 2, process.stderr, () => gone)];
    let exit: Awaited<ReturnType<SandboxProcess['wait']>>;
    try {
      exit = await process.wait();
    } catch (error) {
      await Promise.all(outputs);
      const message = `Internal error occurred: error executing command in container: ${(error as Error).message}`;
      await sendFrame(ws, 3, Buffer.from(JSON.stringify(statusBody('InternalError', message, 500, { causes: [{ message }] }))));
      ws.close(1000);
      return;
    }
    await Promise.all(outputs);
    this.context.kubelet.execEnded(runtime, exit);
    const code = exit.exitCode;
    const status =
      code === 0
        ? { metadata: {}, status: 'Success' }
        : {
            metadata: {},
            status: 'Failure',
            message: `command terminated with non-zero exit code: command terminated with exit code ${code}`,
            reason: 'NonZeroExitCode',
            details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
          };
    await sendFrame(ws, 3, Buffer.from(JSON.stringify(status)));
    ws.close(1000);
  }

  private async portForward(ws: WebSocket, runtime: PodRuntime, ports: number[]): Promise<void> {
    const connections = new Map<number, { write(data: Uint8Array): void; end(): void }>();
    // The client may send as soon as the upgrade is done, before the pod side is connected: the
    // kubelet holds those bytes (and an early close) for the connection, so this does too.
    const early = new Map<number, { chunks: Buffer[]; ended: boolean }>(ports.map((_port, index) => [index, { chunks: [], ended: false }]));
    const attach = (index: number, connection: { write(data: Uint8Array): void; end(): void }) => {
      connections.set(index, connection);
      const held = early.get(index);
      early.delete(index);
      for (const chunk of held?.chunks ?? []) connection.write(chunk);
      if (held?.ended) connection.end();
    };
    let open = ports.length;
    const closeOne = () => {
      if (--open <= 0 && ws.readyState === WebSocket.OPEN) ws.close(1000);
    };
    ws.on('message', (data: RawData) => {
      const frame = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (frame.byteLength === 0 || frame[0]! % 2 !== 0) return;
      const index = frame[0]! / 2;
      const connection = connections.get(index);
      if (connection) connection.write(frame.subarray(1));
      else early.get(index)?.chunks.push(Buffer.from(frame.subarray(1)));
    });
    ws.on('close', () => {
      for (const connection of connections.values()) connection.end();
      for (const held of early.values()) held.ended = true;
    });
    for (const [index, port] of ports.entries()) {
      const prefix = Buffer.from([port & 0xff, port >> 8]);
      await sendFrame(ws, index * 2, prefix);
      await sendFrame(ws, index * 2 + 1, prefix);
    }
    await Promise.all(
      ports.map(async (port, index) => {
        const fail = async (why: string) => {
          await sendFrame(
            ws,
            index * 2 + 1,
            Buffer.from(`an error occurred forwarding ${port} -> ${port}: error forwarding port ${port} to pod ${runtime.name}: ${why}`),
          );
          closeOne();
        };
        const tunnel = runtime.tunnels[port];
        if (tunnel) {
          const socket = connect(tunnel.hostPort, tunnel.host);
          await new Promise<void>((resolve) => {
            socket.once('connect', () => resolve());
            socket.once('error', (error) => {
              void fail(`failed to connect to localhost:${port} inside namespace: ${error.message}`);
              resolve();
            });
          });
          if (socket.destroyed) return;
          attach(index, {
            write: (bytes) => void (socket.write(bytes) || (ws.pause(), socket.once('drain', () => ws.resume()))),
            end: () => socket.end(),
          });
          socket.on('data', (chunk: Buffer) => {
            socket.pause();
            void sendFrame(ws, index * 2, chunk).then(() => socket.resume());
          });
          socket.on('error', () => undefined);
          socket.on('close', closeOne);
          return;
        }
        let relay: SandboxProcess;
        try {
          relay = await runtime.local!.exec(['socat', '-', `TCP:127.0.0.1:${port}`]);
        } catch (error) {
          return fail(`the emulator relays undeclared ports with socat inside the pod and could not start it: ${(error as Error).message}`);
        }
        const writer = relay.stdin.getWriter();
        writer.closed.catch(() => undefined);
        let queue: Promise<unknown> = Promise.resolve();
        attach(index, {
          write: (bytes) => {
            const copy = Uint8Array.from(bytes);
            queue = queue.then(() => writer.write(copy)).catch(() => undefined);
          },
          end: () => {
            queue = queue.then(() => writer.close()).catch(() => undefined);
          },
        });
        const errors: Buffer[] = [];
        void relay.stderr.pipeTo(new WritableStream({ write: (chunk) => void errors.push(Buffer.from(chunk)) })).catch(() => undefined);
        await pump(ws, index * 2, relay.stdout, () => ws.readyState !== WebSocket.OPEN);
        const exit = await relay.wait().catch(() => ({ exitCode: 1 }));
        if (exit.exitCode !== 0)
          return fail(
            `failed to connect to localhost:${port} inside namespace: ${Buffer.concat(errors).toString('utf8').trim() || 'connection refused'}`,
          );
        closeOne();
      }),
    );
  }

  close(): void {
    for (const client of this.server.clients) client.terminate();
    this.server.close();
  }
}
