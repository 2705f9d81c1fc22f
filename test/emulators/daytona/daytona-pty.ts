/**
 * The daemon's PTY sessions (`/toolbox/<sandboxId>/process/pty...`, the SDK's `createPty`,
 * `connectPty`, `resizePtySession`, `killPtySession`, `listPtySessions`, `getPtySessionInfo`):
 * a login `bash` on a terminal of the local sandbox, `TERM=xterm-256color`, in `cwd` (default
 * the working directory), with the session's `envs`.
 * - WebSocket `…/pty/create-connect?id=&cols=&rows=&cwd=` creates and attaches in one step (the
 *   envs come as the subprotocol `X-Daytona-Pty-Envs~<base64url JSON>`); `…/pty/:id/connect`
 *   attaches to one made by `POST /process/pty`. On attach the daemon sends the text frame
 *   `{"type":"control","status":"connected"}`; the terminal's output goes as binary frames and
 *   every frame from the client is input. When the shell exits (and the client offered
 *   `X-Daytona-Pty-Exit-Control`) it sends `{"type":"control","status":"exited","exitCode":N}`,
 *   then closes (1000, the reason `{"exitCode":N}`).
 * - Output is read from the terminal only while a client is attached, so a detached session
 *   keeps its output for the next attach (and stalls once the terminal's buffer is full).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SandboxProcess } from '../../../src/kit/index.js';
import { HttpError, sendJson, type DaytonaRoute } from './daytona-http.js';
import type { DaytonaSandbox, DaytonaState } from './daytona-state.js';

export const exitControlProtocol = 'X-Daytona-Pty-Exit-Control';
const envsProtocolPrefix = 'X-Daytona-Pty-Envs~';

interface PtySession {
  readonly id: string;
  cols: number;
  rows: number;
  readonly cwd: string;
  readonly envs: Record<string, string>;
  readonly createdAt: number;
  readonly lazyStart: boolean;
  process: SandboxProcess | undefined;
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  exitCode: number | undefined;
  readonly clients: Set<WebSocket>;
  /** Resolves the pump when a client attaches. */
  wake: (() => void) | undefined;
}

const ptysKey = 'ptys';

function ptysOf(sandbox: DaytonaSandbox): Map<string, PtySession> {
  let ptys = sandbox.extra.get(ptysKey) as Map<string, PtySession> | undefined;
  if (!ptys) {
    ptys = new Map();
    sandbox.extra.set(ptysKey, ptys);
  }
  return ptys;
}

function infoDto(session: PtySession) {
  return {
    id: session.id,
    cols: session.cols,
    rows: session.rows,
    cwd: session.cwd,
    envs: session.envs,
    createdAt: new Date(session.createdAt).toISOString(),
    active: session.process !== undefined && session.exitCode === undefined,
    lazyStart: session.lazyStart,
  };
}

function size(value: unknown, fallback: number, name: string): number {
  if (value === undefined || value === null || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 1000)
    throw new HttpError(400, `${name} must be between 1 and 1000`, 'BAD_REQUEST');
  return number;
}

function register(
  sandbox: DaytonaSandbox,
  spec: { id?: string; cols?: unknown; rows?: unknown; cwd?: string; envs?: Record<string, string>; lazyStart?: boolean },
): PtySession {
  const id = spec.id || crypto.randomUUID();
  const ptys = ptysOf(sandbox);
  if (ptys.has(id)) throw new HttpError(409, `PTY session ${id} already exists`, 'CONFLICT');
  const session: PtySession = {
    id,
    cols: size(spec.cols, 80, 'cols'),
    rows: size(spec.rows, 24, 'rows'),
    cwd: spec.cwd || (sandbox.localOptions.workdir ?? sandbox.home),
    envs: spec.envs ?? {},
    createdAt: Date.now(),
    lazyStart: spec.lazyStart ?? false,
    process: undefined,
    reader: undefined,
    writer: undefined,
    exitCode: undefined,
    clients: new Set(),
    wake: undefined,
  };
  ptys.set(id, session);
  return session;
}

async function launch(state: DaytonaState, sandbox: DaytonaSandbox, session: PtySession): Promise<void> {
  if (session.process) return;
  const { local } = state.running(sandbox.id);
  const process = await local.exec(['bash', '-l'], {
    pty: { cols: session.cols, rows: session.rows },
    cwd: session.cwd,
    env: { TERM: 'xterm-256color', ...sandbox.daemonEnv, ...session.envs },
  });
  session.process = process;
  session.reader = process.stdout.getReader();
  session.writer = process.stdin.getWriter();
  session.writer.closed.catch(() => undefined);
  void process.wait().then(
    (status) => finish(session, status.exitCode),
    () => finish(session, -1),
  );
  void pump(session);
}

/** Output goes to the attached clients; with none attached the terminal is not read. */
async function pump(session: PtySession): Promise<void> {
  const reader = session.reader!;
  try {
    for (;;) {
      while (session.clients.size === 0) await new Promise<void>((resolve) => (session.wake = resolve));
      const { done, value } = await reader.read();
      if (done) break;
      await Promise.all(
        [...session.clients].map(
          (client) => new Promise<void>((resolve) => (client.readyState === client.OPEN ? client.send(value, () => resolve()) : resolve())),
        ),
      );
    }
  } catch {
    // The terminal went away: the exit closes the clients.
  }
}

function finish(session: PtySession, exitCode: number): void {
  session.exitCode = exitCode;
  // Let the last output reach the clients before the exit is told.
  setTimeout(() => {
    for (const client of session.clients) closeWithExit(client, exitCode);
    session.clients.clear();
  }, 50).unref();
}

function closeWithExit(client: WebSocket, exitCode: number): void {
  if (client.readyState !== client.OPEN) return;
  if (client.protocol === exitControlProtocol) client.send(JSON.stringify({ type: 'control', status: 'exited', exitCode }));
  client.close(1000, JSON.stringify({ exitCode }));
}

function attach(session: PtySession, client: WebSocket): void {
  client.send(JSON.stringify({ type: 'control', status: 'connected' }));
  if (session.exitCode !== undefined) {
    closeWithExit(client, session.exitCode);
    return;
  }
  session.clients.add(client);
  session.wake?.();
  const writer = session.writer!;
  client.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    void writer.write(new Uint8Array(bytes)).catch(() => undefined);
  });
  client.on('close', () => {
    session.clients.delete(client);
  });
  client.on('error', () => undefined);
}

/** Kills the terminals of a sandbox whose processes ended. */
export async function dropPtys(sandbox: DaytonaSandbox): Promise<void> {
  const ptys = ptysOf(sandbox);
  for (const session of ptys.values()) await session.process?.kill('SIGKILL').catch(() => undefined);
  ptys.clear();
}

export function ptyRoutes(state: DaytonaState): DaytonaRoute[] {
  const sandboxOf = (id: string) => state.running(id).sandbox;
  const sessionOf = (sandbox: DaytonaSandbox, id: string) => {
    const found = ptysOf(sandbox).get(id);
    if (!found) throw new HttpError(404, `PTY session ${id} not found`, 'NOT_FOUND');
    return found;
  };
  return [
    {
      method: 'POST',
      pattern: '/process/pty',
      async handle(request, response) {
        const sandbox = sandboxOf(request.params.sandboxId!);
        const body = (await request.json()) as {
          id?: string;
          cols?: number;
          rows?: number;
          cwd?: string;
          envs?: Record<string, string>;
          lazyStart?: boolean;
        };
        const session = register(sandbox, body);
        if (!session.lazyStart) await launch(state, sandbox, session);
        sendJson(response, 200, { sessionId: session.id });
      },
    },
    {
      method: 'GET',
      pattern: '/process/pty',
      handle: async (request, response) =>
        sendJson(response, 200, { sessions: [...ptysOf(sandboxOf(request.params.sandboxId!)).values()].map(infoDto) }),
    },
    {
      method: 'GET',
      pattern: '/process/pty/:sessionId',
      handle: async (request, response) =>
        sendJson(response, 200, infoDto(sessionOf(sandboxOf(request.params.sandboxId!), request.params.sessionId!))),
    },
    {
      method: 'DELETE',
      pattern: '/process/pty/:sessionId',
      async handle(request, response) {
        const sandbox = sandboxOf(request.params.sandboxId!);
        const session = sessionOf(sandbox, request.params.sessionId!);
        await session.process?.kill('SIGKILL').catch(() => undefined);
        ptysOf(sandbox).delete(session.id);
        sendJson(response, 200, { message: `PTY session ${session.id} deleted` });
      },
    },
    {
      method: 'POST',
      pattern: '/process/pty/:sessionId/resize',
      async handle(request, response) {
        const sandbox = sandboxOf(request.params.sandboxId!);
        const session = sessionOf(sandbox, request.params.sessionId!);
        const body = (await request.json()) as { cols?: number; rows?: number };
        session.cols = size(body.cols, session.cols, 'cols');
        session.rows = size(body.rows, session.rows, 'rows');
        await session.process?.resize?.({ cols: session.cols, rows: session.rows });
        sendJson(response, 200, infoDto(session));
      },
    },
  ];
}

/** The PTY WebSockets: create-connect and connect. */
export function startPtySockets(state: DaytonaState) {
  const server = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (offered) => (offered.has(exitControlProtocol) ? exitControlProtocol : false),
  });
  const refuse = (socket: Duplex, status: number, message: string) =>
    socket.end(
      `HTTP/1.1 ${status} Error\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ statusCode: status, message })}`,
    );
  return {
    async handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, params: { sandboxId: string; sessionId?: string }) {
      let session: PtySession;
      let sandbox: DaytonaSandbox;
      try {
        sandbox = state.running(params.sandboxId).sandbox;
        if (params.sessionId === undefined) {
          const url = new URL(request.url ?? '/', 'http://emulator');
          const offered = String(request.headers['sec-websocket-protocol'] ?? '')
            .split(',')
            .map((part) => part.trim());
          const envsToken = offered.find((part) => part.startsWith(envsProtocolPrefix));
          const envs = envsToken
            ? (JSON.parse(Buffer.from(envsToken.slice(envsProtocolPrefix.length), 'base64url').toString('utf8')) as Record<string, string>)
            : {};
          session = register(sandbox, {
            id: url.searchParams.get('id') ?? undefined,
            cols: url.searchParams.get('cols'),
            rows: url.searchParams.get('rows'),
            cwd: url.searchParams.get('cwd') ?? undefined,
            envs,
          });
        } else {
          const found = ptysOf(sandbox).get(params.sessionId);
          if (!found) throw new HttpError(404, `PTY session ${params.sessionId} not found`);
          session = found;
        }
        await launch(state, sandbox, session);
      } catch (error) {
        return refuse(socket, error instanceof HttpError ? error.status : 500, error instanceof Error ? error.message : String(error));
      }
      server.handleUpgrade(request, socket, head, (client) => attach(session, client));
    },
    close() {
      for (const client of server.clients) client.terminate();
      server.close();
    },
  };
}
