/**
 * A local Daytona emulator: one plain HTTP/1.1 server on 127.0.0.1 that the real
 * `@daytonaio/sdk` reaches through `apiUrl` (`http://127.0.0.1:<port>/api`, Daytona's REST API)
 * and the `toolboxProxyUrl` every sandbox DTO carries (`http://127.0.0.1:<port>/toolbox`, the
 * daemon of each sandbox under `/toolbox/<sandboxId>/...`), plus a preview edge on a second port
 * (daytona-preview.ts). Every sandbox runs in the local bubblewrap provider. Any route it does
 * not serve is a 501 naming the call, never a hang.
 *
 * Wiring: the state (daytona-state.ts), one handler group per concern (daytona-sandboxes.ts and
 * daytona-snapshots.ts: the API; daytona-process.ts, daytona-files.ts, daytona-pty.ts: the
 * daemon), WebSockets (daytona-events.ts: the SDK's socket.io event stream; the followed
 * session logs and PTYs), and the HTTP plumbing (daytona-http.ts).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { localProviderOnTestInternet } from '../shared/test-internet-provider.js';
import { startEventHub } from './daytona-events.js';
import { fileRoutes } from './daytona-files.js';
import { HttpError, matchPattern, sendError, serveFromTable, type RouteTable } from './daytona-http.js';
import { commandForLogs, dropSessions, processRoutes } from './daytona-process.js';
import { dropPtys, ptyRoutes, startPtySockets } from './daytona-pty.js';
import { startPreviewEdge } from './daytona-preview.js';
import { sandboxDto, sandboxRoutes } from './daytona-sandboxes.js';
import { snapshotRoutes } from './daytona-snapshots.js';
import { DaytonaState } from './daytona-state.js';

export interface DaytonaEmulatorOptions {
  /** Where sandboxes run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** The API key the emulator accepts (`Authorization: Bearer`). @default any non-empty key */
  apiKey?: string;
  /**
   * Without `provider`: run sandboxes in a local provider whose egress goes to the test internet
   * (../shared/test-internet-provider.ts), so that allowlists reach `allowed.test`; an object adds
   * hosts of the test's own to that internet. @default false
   */
  testInternet?: boolean | TestInternetOptions;
}

export interface DaytonaEmulator {
  /** The SDK's `apiUrl`: `http://127.0.0.1:<port>/api`. Also what `spawnEmulator` reports. */
  readonly url: string;
  /** The key to give the SDK (`apiKey`): the one asked for, or a fixed test key. */
  readonly apiKey: string;
  /** The toolbox base URL the sandbox DTOs carry. */
  readonly toolboxProxyUrl: string;
  /** Host names of preview links end in this (`daytona.localhost:<edgePort>`). */
  readonly previewDomain: string;
  /** Call counts by `METHOD pattern`, for tests and the benchmark. */
  readonly calls: Map<string, number>;
  /** Clients connected to the event socket. */
  readonly eventClients: number;
  /** Terminates every sandbox it started and stops its servers. */
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

const stdoutPrefix = Buffer.from([0x01, 0x01, 0x01]);
const stderrPrefix = Buffer.from([0x02, 0x02, 0x02]);

export async function startDaytonaEmulator(options: DaytonaEmulatorOptions = {}): Promise<DaytonaEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const volumesDir = mkdtempSync(join(tmpdir(), 'sandport-daytona-volumes-'));
  // The sandboxes' host uid must reach the volumes below it.
  chmodSync(volumesDir, 0o755);
  const state = new DaytonaState({ provider, apiKey: options.apiKey, volumesDir });
  state.stopHooks.add(dropSessions);
  state.stopHooks.add(dropPtys);
  const edge = await startPreviewEdge(state);
  state.previewDomain = edge.domain;
  const events = startEventHub(state, (sandbox) => sandboxDto(state, sandbox));
  const ptySockets = startPtySockets(state);
  const logSockets = new WebSocketServer({ noServer: true, perMessageDeflate: false });

  const check = (request: Pick<IncomingMessage, 'headers'>) => state.checkApiKey(request);
  const api: RouteTable = { source: 'api', routes: [...sandboxRoutes(state), ...snapshotRoutes(state)], check };
  const toolbox: RouteTable = { source: 'daemon', routes: [...processRoutes(state), ...fileRoutes(state), ...ptyRoutes(state)], check };

  const onRequest = (raw: IncomingMessage, response: ServerResponse) => {
    const url = new URL(raw.url ?? '/', 'http://emulator');
    const path = url.pathname;
    if (path === '/api' || path.startsWith('/api/')) {
      serveFromTable(api, raw, response, url, path.slice('/api'.length) || '/', {}, state.calls);
      return;
    }
    const toolboxMatch = /^\/toolbox\/([^/]+)(\/.*)?$/.exec(path);
    if (toolboxMatch) {
      serveFromTable(toolbox, raw, response, url, toolboxMatch[2] ?? '/', { sandboxId: decodeURIComponent(toolboxMatch[1]!) }, state.calls);
      return;
    }
    raw.resume();
    sendError(response, 'api', 501, `The Daytona emulator does not implement ${raw.method} ${path}`, { method: raw.method ?? 'GET', path });
  };

  const refuseUpgrade = (socket: Duplex, status: number, message: string) => {
    const text = JSON.stringify({ statusCode: status, message, source: 'DAYTONA_DAEMON' });
    socket.end(
      `HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  };

  const followLogs = (request: IncomingMessage, socket: Duplex, head: Buffer, params: Record<string, string>) => {
    const entry = commandForLogs(state, params.sandboxId!, params.sessionId!, params.commandId!);
    logSockets.handleUpgrade(request, socket, head, (client) => {
      const cursor = entry.log.follow();
      let open = true;
      client.on('close', () => {
        open = false;
        entry.log.leave(cursor);
      });
      client.on('error', () => undefined);
      void (async () => {
        while (open) {
          const next = await entry.log.read(cursor);
          if (next === null) break;
          const frame = Buffer.concat([next.stream === 'stdout' ? stdoutPrefix : stderrPrefix, next.bytes]);
          // Waits until the frame is handed to the socket, so a slow client holds the command back.
          await new Promise<void>((resolve) => client.send(frame, () => resolve()));
        }
        entry.log.leave(cursor);
        if (open) client.close(1000);
      })();
    });
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const url = new URL(request.url ?? '/', 'http://emulator');
    const path = url.pathname;
    try {
      if (path === '/api/socket.io/' || path === '/api/socket.io') return events.handleUpgrade(request, socket, head);
      check(request);
      const toolboxMatch = /^\/toolbox\/([^/]+)(\/.*)$/.exec(path);
      if (toolboxMatch) {
        const sandboxId = decodeURIComponent(toolboxMatch[1]!);
        const rest = toolboxMatch[2]!;
        const logs = matchPattern('/process/session/:sessionId/command/:commandId/logs', rest);
        if (logs) return followLogs(request, socket, head, { sandboxId, ...logs });
        if (rest === '/process/pty/create-connect') return void ptySockets.handleUpgrade(request, socket, head, { sandboxId });
        const connect = matchPattern('/process/pty/:sessionId/connect', rest);
        if (connect) return void ptySockets.handleUpgrade(request, socket, head, { sandboxId, sessionId: connect.sessionId! });
      }
      refuseUpgrade(socket, 501, `The Daytona emulator does not implement a WebSocket at ${path}`);
    } catch (error) {
      refuseUpgrade(socket, error instanceof HttpError ? error.status : 500, error instanceof Error ? error.message : String(error));
    }
  };

  const server = createServer(onRequest);
  server.on('upgrade', onUpgrade);
  // Executes and downloads stay open for as long as the command or the file runs.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  const port = await listen(server);
  const origin = `http://127.0.0.1:${port}`;
  state.toolboxProxyUrl = `${origin}/toolbox`;
  return {
    url: `${origin}/api`,
    apiKey: options.apiKey ?? 'daytona-emulator-key',
    toolboxProxyUrl: state.toolboxProxyUrl,
    previewDomain: state.previewDomain,
    calls: state.calls,
    get eventClients() {
      return events.clients;
    },
    async close() {
      await state.closeAll();
      events.close();
      ptySockets.close();
      for (const client of logSockets.clients) client.terminate();
      logSockets.close();
      for (const closer of state.closers) await closer().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await edge.close();
      await internet?.close();
      rmSync(volumesDir, { recursive: true, force: true });
    },
  };
}
