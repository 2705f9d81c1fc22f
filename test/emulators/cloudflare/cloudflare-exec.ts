/**
 * 0.12's command surface: `POST /v1/sandbox/:id/exec` (server-sent events), sessions, and
 * `GET /running`, as cloudflare-bridge.md §1.3 and §1.5 record the bridge.
 *
 * - The argv becomes one string (cloudflare-wire.ts `commandLine`) run by `/bin/bash -c`, with
 *   no stdin (closed at once), cwd `/workspace` unless the request or the session says otherwise.
 * - The answer is `200 text/event-stream` before the command starts; everything after that,
 *   failures included, is an event: `stdout`/`stderr` (base64 of the UTF-8 of the text the
 *   output decodes to, so bytes that are not UTF-8 become U+FFFD), `exit` `{"exit_code":N}`,
 *   `error` `{"error","code"}`.
 * - `timeout_ms`: the tree is killed, stderr gets `Command timed out after Nms\n`, exit 124.
 * - A client that goes away does not stop the command; its output is read and dropped.
 */
import type { ServerResponse } from 'node:http';
import { constants as osConstants } from 'node:os';
import { SandboxTimeoutError, type SandboxProcess } from '../../../src/kit/index.js';
import { invalidRequest, jsonBody, sendJson, BridgeError, type BridgeRequest, type BridgeRoute } from './cloudflare-http.js';
import type { BridgeSession, Container } from './cloudflare-state.js';
import { commandLine, isSessionId, resolveWorkspacePath, sseEvent } from './cloudflare-wire.js';

/** The request's container, allocated by the router's `matched` hook. */
export type ContainerOf = (request: BridgeRequest) => Container;

/** An SSE response that waits for the client (backpressure) and, once it left, drops writes. */
export class EventSink {
  /** The client went away: events are dropped from now on. */
  gone = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly response: ServerResponse) {
    response.on('close', () => (this.gone = true));
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.flushHeaders();
  }

  /** Writes one event; resolves once the client took it (or left). */
  send(name: string | undefined, data: string): Promise<void> {
    this.queue = this.queue.then(() => this.write(sseEvent(name, data)));
    return this.queue;
  }

  end(): Promise<void> {
    this.queue = this.queue.then(() => {
      if (!this.gone) this.response.end();
    });
    return this.queue;
  }

  private write(text: string): Promise<void> {
    if (this.gone) return Promise.resolve();
    if (this.response.write(text)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.on('drain', done);
      this.response.on('close', done);
    });
  }
}

/** Sends each chunk of `stream` as the text it decodes to (streaming, lossy), base64 of its UTF-8. */
async function relayText(stream: ReadableStream<Uint8Array>, name: 'stdout' | 'stderr', sink: EventSink): Promise<void> {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const send = (text: string) => (text === '' ? undefined : sink.send(name, Buffer.from(text, 'utf8').toString('base64')));
  try {
    for await (const chunk of stream) {
      // Nobody reads any more: drain (the command keeps running, as on the bridge) without the encoding work.
      if (sink.gone) continue;
      await send(decoder.decode(chunk, { stream: true }));
    }
  } catch {
    // The sandbox went away mid-stream: what was read is all there is.
  }
  await send(decoder.decode());
}

function exitCodeOf(status: { exitCode: number; signal: string | undefined }): number {
  if (!status.signal) return status.exitCode;
  return 128 + (osConstants.signals[status.signal as NodeJS.Signals] ?? 9);
}

const execError = (error: string, code: 'exec_error' | 'exec_transport_error') => JSON.stringify({ error, code });

/** What an interrupted exec reports when its container stopped under it (observed, §1.3). */
const interrupted = 'exec failed: Sandbox operation sandbox.exec was interrupted while the platform was updating the sandbox runtime';

async function streamExec(
  container: Container,
  command: string,
  options: { cwd: string; env: Readonly<Record<string, string>>; timeoutMs: number | undefined; timeoutText: string },
  sink: EventSink,
): Promise<void> {
  let process: SandboxProcess;
  try {
    process = await container.local.exec(['/bin/bash', '-c', command], {
      cwd: options.cwd,
      env: { ...options.env },
      ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
    });
  } catch {
    // A missing cwd, observed: no output, one error event.
    await sink.send('error', execError('exec failed: Command execution failed', 'exec_transport_error'));
    return sink.end();
  }
  void process.stdin.close().catch(() => undefined);
  const relayed = Promise.all([relayText(process.stdout, 'stdout', sink), relayText(process.stderr, 'stderr', sink)]);
  const outcome = await process.wait().then(
    (status) => ({ status }),
    (error: unknown) => ({ error }),
  );
  await relayed;
  if ('status' in outcome) {
    await sink.send('exit', JSON.stringify({ exit_code: exitCodeOf(outcome.status) }));
  } else if (outcome.error instanceof SandboxTimeoutError) {
    await sink.send('stderr', Buffer.from(`Command timed out after ${options.timeoutText}ms\n`).toString('base64'));
    await sink.send('exit', JSON.stringify({ exit_code: 124 }));
  } else {
    await sink.send('error', execError(interrupted, 'exec_transport_error'));
  }
  await sink.end();
}

/** The session a `Session-Id` header names: undefined without one; unknown ids are accepted (as observed). */
function sessionOf(request: BridgeRequest, container: Container): { session: BridgeSession | undefined } {
  const raw = request.headers['session-id'];
  if (raw === undefined || raw === '') return { session: undefined };
  const id = Array.isArray(raw) ? raw[0]! : raw;
  if (!isSessionId(id)) throw invalidRequest('Invalid session ID format');
  return { session: container.data.sessions.get(id) };
}

/** Validates `Session-Id` for routes that accept one but need nothing of it (files). */
export function checkSessionHeader(request: BridgeRequest): void {
  const raw = request.headers['session-id'];
  if (raw === undefined || raw === '') return;
  if (!isSessionId(Array.isArray(raw) ? raw[0]! : raw)) throw invalidRequest('Invalid session ID format');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function execRoutes(containerOf: ContainerOf): BridgeRoute[] {
  return [
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/exec',
      async handle(request, response) {
        const body = await jsonBody(request);
        const argv = isRecord(body) ? body.argv : undefined;
        if (!Array.isArray(argv) || argv.length === 0) throw invalidRequest('argv must be a non-empty array');
        const container = containerOf(request);
        const { session } = sessionOf(request, container);
        const fields = body as Record<string, unknown>;
        let cwd = session?.cwd ?? '/workspace';
        if (typeof fields.cwd === 'string') {
          const resolved = resolveWorkspacePath(fields.cwd);
          if (!resolved) throw invalidRequest('cwd must resolve to a location within /workspace', 403);
          cwd = resolved;
        }
        const timeoutMs = typeof fields.timeout_ms === 'number' && fields.timeout_ms > 0 ? Math.ceil(fields.timeout_ms) : undefined;
        const sink = new EventSink(response);
        const timeoutText = String(fields.timeout_ms);
        await streamExec(container, commandLine(argv.map(String)), { cwd, env: session?.env ?? {}, timeoutMs, timeoutText }, sink);
      },
    },
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/session',
      async handle(request, response) {
        const container = containerOf(request);
        const text = (await request.body()).toString('utf8');
        let body: unknown = {};
        try {
          body = text.trim() === '' ? {} : JSON.parse(text);
        } catch {
          // The bridge ignores a body it cannot parse: every field is optional.
        }
        const fields = isRecord(body) ? body : {};
        const id = typeof fields.id === 'string' && fields.id !== '' ? fields.id : `session-${Date.now()}`;
        if (container.data.sessions.has(id)) {
          throw new BridgeError(502, `session create failed: Session '${id}' already exists`, 'session_error');
        }
        const env: Record<string, string> = {};
        if (isRecord(fields.env)) for (const [name, value] of Object.entries(fields.env)) env[name] = String(value);
        container.data.sessions.set(id, { cwd: typeof fields.cwd === 'string' ? fields.cwd : undefined, env });
        sendJson(response, 200, { id });
      },
    },
    {
      method: 'DELETE',
      pattern: '/v1/sandbox/:id/session/:sid',
      async handle(request, response) {
        const container = containerOf(request);
        const sid = request.params.sid!;
        if (!container.data.sessions.delete(sid)) {
          throw new BridgeError(502, `session delete failed: Session '${sid}' not found`, 'session_error');
        }
        sendJson(response, 200, { success: true, sessionId: sid });
      },
    },
    {
      method: 'GET',
      pattern: '/v1/sandbox/:id/pty',
      async handle(request) {
        request.raw.resume();
        const upgrade = request.headers.upgrade;
        if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') throw invalidRequest('WebSocket upgrade required');
        throw new BridgeError(502, 'terminal failed: the sandport emulator does not emulate the PTY WebSocket', 'exec_transport_error');
      },
    },
    runningRoute(containerOf),
  ];
}

/** `GET /running`: runs `true` in the container (allocated by then, as on the bridge). */
export function runningRoute(containerOf: ContainerOf): BridgeRoute {
  return {
    method: 'GET',
    pattern: '/v1/sandbox/:id/running',
    async handle(request, response) {
      const container = containerOf(request);
      const running = await container.local.run(['true']).then(
        (result) => result.exitCode === 0,
        () => false,
      );
      sendJson(response, 200, { running });
    },
  };
}
