/**
 * Our exec and port-forward WebSocket client against a tiny `ws` server on loopback that speaks
 * the API server's framing: v5 required, channels, the stdin half-close, the exit code from the
 * Status frame, a refused upgrade's Status body, a server-sent CLOSE frame tolerated, a close
 * without Status reported as such, the kube config's token applied, and output backpressure (the
 * server stalls while nobody reads).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createConnection, createServer as createNetServer, type AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import {
  execProtocol,
  openKubernetesExec,
  portForwardProtocol,
  relayPortForward,
  type KubernetesConnection,
} from '../../adapters/kubernetes/kubernetes-exec-client.js';
import { parseKubernetesExitStatus } from '../../adapters/kubernetes/kubernetes-options.js';
import { SandboxNotFoundError, SandboxProviderError, readBytes } from '../../src/kit/index.js';

type Handler = (socket: WebSocket, request: IncomingMessage, url: URL) => void;

let server: Server;
let port = 0;
let handler: Handler = () => undefined;
let lastAuthorization: string | undefined;
const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (protocols) =>
    protocols.has(execProtocol) ? execProtocol : protocols.has(portForwardProtocol) ? portForwardProtocol : false,
});

function frame(channelId: number, data: string | Buffer = ''): Buffer {
  return Buffer.concat([Buffer.from([channelId]), Buffer.isBuffer(data) ? data : Buffer.from(data)]);
}

const success = JSON.stringify({ metadata: {}, status: 'Success' });
const exitWith = (code: number) =>
  JSON.stringify({
    status: 'Failure',
    reason: 'NonZeroExitCode',
    message: `command terminated with non-zero exit code: ${code}`,
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  });

function connection(): KubernetesConnection {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'test', token: 'secret-token' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: 'default' }],
    currentContext: 'test',
  });
  return { kubeConfig, WebSocket };
}

const exec = (argv: string[], stdin = true) =>
  openKubernetesExec(connection(), { namespace: 'default', pod: 'p1', container: 'sandbox', argv, stdin });

beforeAll(async () => {
  server = createHttpServer((_request, response) => {
    response.writeHead(404).end();
  });
  server.on('upgrade', (request, socket, head) => {
    lastAuthorization = request.headers.authorization;
    const url = new URL(request.url!, 'http://x');
    if (url.pathname.includes('/pods/missing/')) {
      const body = JSON.stringify({
        kind: 'Status',
        status: 'Failure',
        message: 'pods "missing" not found',
        reason: 'NotFound',
        code: 404,
      });
      socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    if (url.searchParams.get('command') === 'v4-only') {
      const v4 = new WebSocketServer({ noServer: true, handleProtocols: () => 'v4.channel.k8s.io' });
      v4.handleUpgrade(request, socket, head, (ws) => ws.close());
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => handler(ws, request, url));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('kubernetes exec client', () => {
  it('sends the argv as repeated command values with the token, separates stdout and stderr, and reads the exit code from the Status', async () => {
    let seen: string[] = [];
    handler = (ws, _request, url) => {
      seen = url.searchParams.getAll('command');
      ws.send(frame(1)); // the kubelet's "connected" frame
      ws.send(frame(1, 'out'));
      ws.send(frame(2, 'err'));
      ws.send(frame(3, exitWith(3)));
      ws.close(1000);
    };
    const session = await exec(['sh', '-c', 'echo "a b"; exit 3', 'x y']);
    const [stdout, stderr, status] = await Promise.all([readBytes(session.stdout), readBytes(session.stderr), session.status]);
    expect(seen).toEqual(['sh', '-c', 'echo "a b"; exit 3', 'x y']);
    expect(lastAuthorization).toBe('Bearer secret-token');
    expect(Buffer.from(stdout).toString()).toBe('out');
    expect(Buffer.from(stderr).toString()).toBe('err');
    expect(parseKubernetesExitStatus(status!)).toEqual({ exitCode: 3, signal: undefined });
  });

  it('carries stdin to the command and ends it with the v5 half-close, output after the close kept', async () => {
    handler = (ws) => {
      const received: Buffer[] = [];
      ws.on('message', (data: Buffer) => {
        if (data[0] === 0) received.push(data.subarray(1));
        if (data[0] === 255 && data[1] === 0) {
          const all = Buffer.concat(received);
          ws.send(frame(1, all));
          ws.send(frame(1, `\nafter-eof ${all.length}`));
          ws.send(frame(3, success));
          ws.close(1000);
        }
      });
    };
    const session = await exec(['cat']);
    const input = Buffer.alloc(3 * 1024 * 1024 + 7, 'x');
    const writer = session.stdin.getWriter();
    const output = readBytes(session.stdout);
    await writer.write(input);
    await writer.close();
    const text = Buffer.from(await output).toString();
    expect(text.endsWith(`\nafter-eof ${input.length}`)).toBe(true);
    expect(text.length).toBe(input.length + `\nafter-eof ${input.length}`.length);
    expect(parseKubernetesExitStatus((await session.status)!)).toEqual({ exitCode: 0, signal: undefined });
  });

  it('stops reading the socket while nobody reads stdout, so the server stalls, then delivers every byte', async () => {
    const total = 64 * 1024 * 1024;
    let sent = 0;
    let resolveStalled!: (bytes: number) => void;
    const stalled = new Promise<number>((resolve) => (resolveStalled = resolve));
    handler = (ws) => {
      const piece = Buffer.alloc(64 * 1024, 'y');
      const pump = () => {
        while (sent < total) {
          if (ws.bufferedAmount > 4 * 1024 * 1024) {
            resolveStalled(sent);
            setTimeout(pump, 5);
            return;
          }
          ws.send(frame(1, piece));
          sent += piece.length;
        }
        ws.send(frame(3, success));
        ws.close(1000);
      };
      pump();
    };
    const session = await exec(['yes'], false);
    // Nobody reads yet: the server finds its socket full long before it sent everything.
    const sentWhenStalled = await stalled;
    expect(sentWhenStalled).toBeLessThan(32 * 1024 * 1024);
    const reader = session.stdout.getReader();
    let received = 0;
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      received += next.value.byteLength;
    }
    expect(received).toBe(total);
    expect((await session.status)?.status).toBe('Success');
  });

  it('rejects a refused upgrade with the Status body mapped (404 is the sandbox not found)', async () => {
    const error = await openKubernetesExec(connection(), {
      namespace: 'default',
      pod: 'missing',
      container: 'sandbox',
      argv: ['true'],
    }).catch((caught: unknown) => caught);
    expect(SandboxNotFoundError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('pods "missing" not found');
  });

  it('refuses a server that only speaks v4, naming the Kubernetes version it needs', async () => {
    const error = await exec(['v4-only']).catch((caught: unknown) => caught);
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('Kubernetes 1.30');
  });

  it('tolerates a server-sent CLOSE frame and reports a close without Status as undefined', async () => {
    handler = (ws) => {
      ws.send(frame(1, 'partial'));
      ws.send(Buffer.from([255, 1]));
      ws.close(1000);
    };
    const session = await exec(['true'], false);
    expect(Buffer.from(await readBytes(session.stdout)).toString()).toBe('partial');
    expect(await session.status).toBeUndefined();
  });

  it('relays a TCP connection through port-forward framing (port prefix stripped on both channels)', async () => {
    handler = (ws, _request, url) => {
      expect(url.searchParams.get('ports')).toBe('8080');
      const prefix = Buffer.from([8080 & 0xff, 8080 >> 8]);
      ws.send(frame(0, prefix));
      ws.send(frame(1, prefix));
      ws.on('message', (data: Buffer) => {
        if (data[0] === 0) ws.send(frame(0, Buffer.concat([Buffer.from('echo:'), data.subarray(1)])));
      });
    };
    const listener = createNetServer((client) => {
      void relayPortForward(connection(), { namespace: 'default', pod: 'p1', port: 8080 }, client).catch(() => undefined);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const socket = createConnection((listener.address() as AddressInfo).port, '127.0.0.1');
    const reply = await new Promise<string>((resolve, reject) => {
      socket.once('data', (data) => resolve(data.toString()));
      socket.once('error', reject);
      socket.write('hello');
    });
    socket.destroy();
    listener.close();
    expect(reply).toBe('echo:hello');
  });
});
