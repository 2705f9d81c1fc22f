/**
 * State changes as the SDK listens for them: a socket.io endpoint at `/api/socket.io/` (the API
 * URL's path + `/socket.io/`), WebSocket transport only, as the SDK connects (`transports:
 * ['websocket']`). The emulator speaks the two layers the SDK's socket.io-client needs, written
 * here on `ws`:
 * - Engine.IO 4: the open packet (`0{sid, upgrades: [], pingInterval, pingTimeout, maxPayload}`),
 *   a ping (`2`) every `pingInterval` that the client answers (`3`), close (`1`);
 * - Socket.IO 5 on the main namespace: the client's CONNECT (`40{"token": …}`, its API key in
 *   the auth payload) is answered `40{"sid"}`, or `44{"message"}` (CONNECT_ERROR) for a wrong
 *   key; events are `42["<name>", payload]`.
 * Every state change of every sandbox goes to every connected client (one organization):
 * `sandbox.created` with the sandbox DTO, `sandbox.state.updated` with `{ sandbox, oldState,
 * newState }`. The SDK's polling (its fallback, and `useDeprecatedPolling: true`) works against
 * the REST API alone; both are tested in daytona-sdk-lifecycle.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { randomToken } from '../shared/ids.js';
import type { DaytonaSandbox, DaytonaState, SandboxStateName } from './daytona-state.js';

export interface EventHub {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Connected and authenticated clients, for tests. */
  readonly clients: number;
  close(): void;
}

/** Milliseconds between pings; the SDK's client gives up after pingInterval + pingTimeout without one. */
const pingIntervalMs = 25_000;
const pingTimeoutMs = 20_000;

export function startEventHub(state: DaytonaState, dto: (sandbox: DaytonaSandbox) => unknown): EventHub {
  const server = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const connected = new Set<WebSocket>();

  const broadcast = (name: string, payload: unknown) => {
    const frame = `42${JSON.stringify([name, payload])}`;
    for (const socket of connected) if (socket.readyState === socket.OPEN) socket.send(frame);
  };
  const listener = (event: 'sandbox.created' | 'sandbox.state.updated', sandbox: DaytonaSandbox, oldState?: SandboxStateName) => {
    if (connected.size === 0) return;
    if (event === 'sandbox.created') broadcast(event, dto(sandbox));
    else broadcast(event, { sandbox: dto(sandbox), oldState, newState: sandbox.state });
  };
  state.listeners.add(listener);

  server.on('connection', (socket: WebSocket) => {
    socket.send(
      `0${JSON.stringify({ sid: randomToken(20), upgrades: [], pingInterval: pingIntervalMs, pingTimeout: pingTimeoutMs, maxPayload: 1_000_000 })}`,
    );
    const ping = setInterval(() => socket.readyState === socket.OPEN && socket.send('2'), pingIntervalMs);
    ping.unref();
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (text === '3' || text === '2') {
        if (text === '2') socket.send('3');
        return;
      }
      if (text.startsWith('40')) {
        let auth: { token?: unknown } = {};
        try {
          auth = text.length > 2 ? (JSON.parse(text.slice(2)) as { token?: unknown }) : {};
        } catch {
          // An unreadable auth payload is a missing one.
        }
        const token = typeof auth.token === 'string' ? auth.token : '';
        if (token === '' || (state.apiKey !== undefined && token !== state.apiKey)) {
          socket.send(`44${JSON.stringify({ message: 'Unauthorized' })}`);
          return;
        }
        connected.add(socket);
        socket.send(`40${JSON.stringify({ sid: randomToken(20) })}`);
        return;
      }
      if (text.startsWith('41')) connected.delete(socket);
      if (text === '1') socket.close();
    });
    socket.on('close', () => {
      clearInterval(ping);
      connected.delete(socket);
    });
    socket.on('error', () => undefined);
  });

  return {
    handleUpgrade(request, socket, head) {
      const url = new URL(request.url ?? '/', 'http://emulator');
      if (url.searchParams.get('EIO') !== '4' || url.searchParams.get('transport') !== 'websocket') {
        socket.end(
          'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"code":0,"message":"Transport unknown"}',
        );
        return;
      }
      server.handleUpgrade(request, socket, head, (ws) => server.emit('connection', ws, request));
    },
    get clients() {
      return connected.size;
    },
    close() {
      state.listeners.delete(listener);
      for (const socket of server.clients) socket.terminate();
      server.close();
    },
  };
}
