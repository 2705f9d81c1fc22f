/**
 * 0.13's process surface (cloudflare-bridge.md §1.9, read from 0.13.0-next.751.1):
 *
 * - `POST /v1/sandbox/:id/processes` `{argv, timeout?, cwd?, env?}`: the argv runs as is (no
 *   shell), with the env on top of the container's, cwd `/workspace` unless given (403 outside
 *   it, as 0.12's exec). Answers the status `{id, pid, command, cwd, state, startedAt, exit?,
 *   endedAt?}`; a program that cannot start (missing, or a missing cwd) is
 *   `502 {"code":"process_error"}`.
 * - `GET /processes`, `GET /processes/:processId` (404 `not_found`).
 * - `GET /processes/:processId/logs?replay&follow&since`: SSE of `data:` lines only, each
 *   `{"type":"stdout"|"stderr","cursor","timestamp","data":<base64 of the raw bytes>}`, ending
 *   with `{"type":"terminal","state":"exited","cursor","timestamp","exit":{code,signal?,timedOut}}`.
 *   Cursors are opaque strings (here the event's sequence number); `since` resumes after one.
 *   `replay` (default true) starts from the oldest retained event, `replay=false` from now;
 *   `follow` (default true) keeps the stream open until the terminal event, `follow=false` ends
 *   it after what is there.
 * - `POST /processes/:processId/kill` `{signal: 1..64}` (default 15, also without a body) → 204.
 * - `timeout` ms: the tree is killed; the exit says `timedOut: true`.
 *
 * The container has no such API here: each process runs under a small sh that prints its pid on
 * the first line of stdout and then `exec`s the argv; the emulator takes that line off.
 */
import type { ServerResponse } from 'node:http';
import { constants as osConstants } from 'node:os';
import { randomToken } from '../shared/ids.js';
import { SandboxTimeoutError, type SandboxProcess } from '../../../src/kit/index.js';
import { BridgeError, invalidRequest, jsonBody, sendEmpty, sendJson, type BridgeRoute } from './cloudflare-http.js';
import type { ContainerOf } from './cloudflare-exec.js';
import type { Container } from './cloudflare-state.js';
import { resolveWorkspacePath } from './cloudflare-wire.js';

interface ProcessExit {
  code: number;
  signal?: number;
  timedOut: boolean;
}

type LogEvent =
  | { type: 'stdout' | 'stderr'; seq: number; timestamp: string; data: Uint8Array }
  | { type: 'terminal'; seq: number; timestamp: string; state: 'exited'; exit: ProcessExit }
  | { type: 'terminal'; seq: number; timestamp: string; state: 'error'; error: { code: string; message: string } };

/** A log event before it has its place in the log. */
type NewLogEvent = LogEvent extends infer Event ? (Event extends LogEvent ? Omit<Event, 'seq' | 'timestamp'> : never) : never;

/**
 * Output kept per process for replays. Past it the oldest events go (a later replay starts with
 * `truncated`), but never one a connected reader has not had yet: then the process waits on its
 * pipe until that reader moves on, so a live stream loses nothing and memory stays bounded.
 */
export const defaultRetainedLogBytes = 64 * 1024 * 1024;

/** A connected log stream: the sequence number of the last event it was sent. */
interface LogReader {
  after: number;
}

class ProcessEntry {
  state: 'running' | 'exited' | 'error' = 'running';
  exit: ProcessExit | undefined;
  error: { code: string; message: string } | undefined;
  endedAt: string | undefined;
  readonly events: LogEvent[] = [];
  /** Events were dropped from the front to bound memory. */
  truncated = false;
  readonly readers = new Set<LogReader>();
  private seq = 0;
  private retained = 0;
  private readonly listeners = new Set<() => void>();
  private readonly advanceListeners = new Set<() => void>();

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly command: readonly string[],
    readonly cwd: string,
    readonly startedAt: string,
    readonly process: SandboxProcess,
    private readonly retainedLimit: number,
  ) {}

  status(): Record<string, unknown> {
    return {
      id: this.id,
      pid: this.pid,
      command: this.command,
      cwd: this.cwd,
      state: this.state,
      startedAt: this.startedAt,
      ...(this.exit && { exit: this.exit }),
      ...(this.error && { error: this.error }),
      ...(this.endedAt && { endedAt: this.endedAt }),
    };
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Appends an event; output waits (backpressure) while the log is full of events a reader still needs. */
  async push(event: NewLogEvent): Promise<void> {
    const full = { ...event, seq: ++this.seq, timestamp: new Date().toISOString() } as LogEvent;
    this.events.push(full);
    if (full.type !== 'terminal') this.retained += full.data.byteLength;
    this.trim();
    for (const listener of this.listeners) listener();
    while (full.type !== 'terminal' && this.retained > this.retainedLimit && this.neededByReader()) {
      await new Promise<void>((resolve) => this.advanceListeners.add(resolve));
      this.trim();
    }
  }

  /** Whether a connected reader has yet to be sent the oldest retained event. */
  private neededByReader(): boolean {
    const oldest = this.events[0];
    return oldest !== undefined && [...this.readers].some((reader) => reader.after < oldest.seq);
  }

  /** A reader was sent more: events no reader needs may go now. */
  advanced(): void {
    const waiting = [...this.advanceListeners];
    this.advanceListeners.clear();
    for (const resolve of waiting) resolve();
  }

  /** Resolves at the next event. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.listeners.delete(wake);
        resolve();
      };
      this.listeners.add(wake);
    });
  }

  private trim(): void {
    let needed = Number.POSITIVE_INFINITY;
    for (const reader of this.readers) needed = Math.min(needed, reader.after + 1);
    while (this.retained > this.retainedLimit && this.events.length > 1 && this.events[0]!.seq < needed) {
      const dropped = this.events.shift()!;
      if (dropped.type !== 'terminal') this.retained -= dropped.data.byteLength;
      this.truncated = true;
    }
  }
}

function processesOf(container: Container): Map<string, ProcessEntry> {
  let map = container.data.extra.get('processes') as Map<string, ProcessEntry> | undefined;
  if (!map) container.data.extra.set('processes', (map = new Map()));
  return map;
}

/**
 * Prints the pid (or `!` when the program is not found) on stdout's first line, then becomes the
 * argv, in a process group of its own where setsid exists (it does not fork here: the shell is no
 * group leader), so that a kill reaches the whole group as the bridge's supervised group.
 */
const launcher = [
  'command -v "$1" >/dev/null 2>&1 || { echo "!"; exit 127; }',
  'echo "$$"',
  'if command -v setsid >/dev/null 2>&1; then exec setsid "$@"; fi',
  'exec "$@"',
].join('\n');

/** Reads stdout up to the first newline; the rest of the stream is the program's own output. */
async function firstLine(stdout: ReadableStream<Uint8Array>): Promise<{ line: string; rest: ReadableStream<Uint8Array> }> {
  const reader = stdout.getReader();
  let held = new Uint8Array(0);
  for (;;) {
    const newline = held.indexOf(0x0a);
    if (newline >= 0) {
      let leftover: Uint8Array | undefined = held.subarray(newline + 1);
      const rest = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            if (leftover && leftover.byteLength > 0) {
              controller.enqueue(leftover);
              leftover = undefined;
              return;
            }
            leftover = undefined;
            const next = await reader.read().catch(() => ({ done: true as const, value: undefined }));
            if (next.done) controller.close();
            else controller.enqueue(next.value);
          },
          cancel: (reason) => reader.cancel(reason),
        },
        { highWaterMark: 0 },
      );
      return { line: new TextDecoder().decode(held.subarray(0, newline)), rest };
    }
    const next = await reader.read();
    if (next.done) return { line: new TextDecoder().decode(held), rest: new ReadableStream({ start: (c) => c.close() }) };
    const joined = new Uint8Array(held.byteLength + next.value.byteLength);
    joined.set(held);
    joined.set(next.value, held.byteLength);
    held = joined;
  }
}

async function collect(entry: ProcessEntry, stream: ReadableStream<Uint8Array>, type: 'stdout' | 'stderr'): Promise<void> {
  try {
    for await (const chunk of stream) if (chunk.byteLength > 0) await entry.push({ type, data: chunk });
  } catch {
    // The container went away: what was read is all there is.
  }
}

function signalNumber(name: string): number {
  return osConstants.signals[name as NodeJS.Signals] ?? 9;
}

async function launch(container: Container, body: Record<string, unknown>, retainedLimit: number): Promise<ProcessEntry> {
  const argv = body.argv as string[];
  const options: { cwd: string; env?: Record<string, string>; timeoutMs?: number } = { cwd: '/workspace' };
  if (body.timeout !== undefined) {
    if (typeof body.timeout !== 'number' || !Number.isFinite(body.timeout) || body.timeout <= 0) {
      throw invalidRequest('timeout must be a positive finite number');
    }
    options.timeoutMs = Math.ceil(body.timeout);
  }
  if (typeof body.cwd === 'string') {
    const cwd = resolveWorkspacePath(body.cwd);
    if (!cwd) throw invalidRequest('cwd must resolve to a location within /workspace', 403);
    options.cwd = cwd;
  }
  if (body.env !== undefined) {
    const env = body.env;
    if (typeof env !== 'object' || env === null || Array.isArray(env) || !Object.values(env).every((v) => typeof v === 'string')) {
      throw invalidRequest('env must be an object of strings');
    }
    options.env = env as Record<string, string>;
  }
  let process: SandboxProcess;
  try {
    process = await container.local.exec(['/bin/sh', '-c', launcher, 'launcher', ...argv], options);
  } catch (error) {
    throw new BridgeError(502, `process launch failed: ${error instanceof Error ? error.message : String(error)}`, 'process_error');
  }
  void process.stdin.close().catch(() => undefined);
  const { line, rest } = await firstLine(process.stdout).catch((error: unknown) => {
    // The container stopped before the program started.
    throw new BridgeError(502, `process launch failed: ${error instanceof Error ? error.message : String(error)}`, 'process_error');
  });
  const pid = Number(line);
  if (!Number.isInteger(pid) || pid <= 0) {
    void process.stderr.cancel().catch(() => undefined);
    await process.wait().catch(() => undefined);
    throw new BridgeError(502, `process launch failed: ProcessSpawnFailedError: spawn ${argv[0]} ENOENT`, 'process_error');
  }
  const entry = new ProcessEntry(`proc_${randomToken(16)}`, pid, argv, options.cwd, new Date().toISOString(), process, retainedLimit);
  processesOf(container).set(entry.id, entry);
  void (async () => {
    const collected = Promise.all([collect(entry, rest, 'stdout'), collect(entry, process.stderr, 'stderr')]);
    const outcome = await process.wait().then(
      (status) => ({ status }),
      (error: unknown) => ({ error }),
    );
    await collected;
    entry.endedAt = new Date().toISOString();
    if ('status' in outcome) {
      const signal = outcome.status.signal ? signalNumber(outcome.status.signal) : undefined;
      entry.exit = signal ? { code: 128 + signal, signal, timedOut: false } : { code: outcome.status.exitCode, timedOut: false };
    } else if (outcome.error instanceof SandboxTimeoutError) {
      entry.exit = { code: 137, signal: 9, timedOut: true };
    } else {
      const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      entry.error = { code: 'RUNTIME_INACTIVE', message: `the container stopped: ${message}` };
    }
    entry.state = entry.exit ? 'exited' : 'error';
    if (entry.exit) void entry.push({ type: 'terminal', state: 'exited', exit: entry.exit });
    else void entry.push({ type: 'terminal', state: 'error', error: entry.error! });
  })();
  return entry;
}

function wireEvent(event: LogEvent): string {
  const { seq, ...rest } = event;
  const body =
    rest.type === 'terminal'
      ? {
          type: rest.type,
          state: rest.state,
          cursor: String(seq),
          timestamp: rest.timestamp,
          ...('exit' in rest ? { exit: rest.exit } : { error: rest.error }),
        }
      : { type: rest.type, cursor: String(seq), timestamp: rest.timestamp, data: Buffer.from(rest.data).toString('base64') };
  return `data: ${JSON.stringify(body)}\n\n`;
}

function booleanParam(value: string | null): boolean | undefined {
  return value === null ? undefined : value === 'true' || value === '1';
}

async function streamLogs(entry: ProcessEntry, query: URLSearchParams, response: ServerResponse): Promise<void> {
  const since = query.get('since');
  const replay = booleanParam(query.get('replay')) ?? true;
  const follow = booleanParam(query.get('follow')) ?? true;
  let after: number;
  if (since !== null) {
    after = Number(since);
    if (!/^\d+$/.test(since) || after > entry.lastSeq) throw invalidRequest(`Invalid process log cursor: ${since}`);
  } else after = replay ? 0 : entry.lastSeq;
  let gone = false;
  const reader: LogReader = { after };
  entry.readers.add(reader);
  // One listener for the whole stream: a long follow must not add one per wait.
  const closed = new Promise<void>((resolve) =>
    response.once('close', () => {
      gone = true;
      entry.readers.delete(reader);
      entry.advanced();
      resolve();
    }),
  );
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  response.flushHeaders();
  const write = async (text: string) => {
    if (response.write(text)) return;
    let drained: () => void = () => undefined;
    await Promise.race([new Promise<void>((resolve) => response.once('drain', (drained = resolve))), closed]);
    response.off('drain', drained);
  };
  const first = entry.events[0];
  if (entry.truncated && first && first.seq > after + 1) {
    await write(`data: ${JSON.stringify({ type: 'truncated', timestamp: new Date().toISOString() })}\n\n`);
  }
  for (;;) {
    if (gone) return;
    // Sequence numbers are contiguous from the first retained event, so the next one is found by index.
    const base = entry.events[0]?.seq ?? entry.lastSeq + 1;
    const event = entry.events[Math.max(0, after + 1 - base)];
    if (event) {
      await write(wireEvent(event));
      after = reader.after = event.seq;
      entry.advanced();
      if (event.type === 'terminal') return void response.end();
      continue;
    }
    if (!follow) return void response.end();
    const waiting = entry.next();
    if (entry.lastSeq === after) await Promise.race([waiting, closed]);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param retainedLogBytes output kept per process for replays. @default 64 MiB */
export function processRoutes(containerOf: ContainerOf, retainedLogBytes = defaultRetainedLogBytes): BridgeRoute[] {
  const find = (container: Container, id: string | undefined) => {
    const entry = processesOf(container).get(id ?? '');
    if (!entry) throw new BridgeError(404, 'Process not found', 'not_found');
    return entry;
  };
  return [
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/processes',
      async handle(request, response) {
        const body = await jsonBody(request);
        const argv = isRecord(body) ? body.argv : undefined;
        if (!Array.isArray(argv) || argv.length === 0) throw invalidRequest('argv must be a non-empty array');
        if (argv.some((item) => typeof item !== 'string')) throw invalidRequest('argv items must be strings');
        if (argv[0] === '') throw invalidRequest('argv executable must be non-empty');
        const entry = await launch(containerOf(request), body as Record<string, unknown>, retainedLogBytes);
        sendJson(response, 200, entry.status());
      },
    },
    {
      method: 'GET',
      pattern: '/v1/sandbox/:id/processes',
      async handle(request, response) {
        sendJson(
          response,
          200,
          [...processesOf(containerOf(request)).values()].map((entry) => entry.status()),
        );
      },
    },
    {
      method: 'GET',
      pattern: '/v1/sandbox/:id/processes/:processId',
      async handle(request, response) {
        sendJson(response, 200, find(containerOf(request), request.params.processId).status());
      },
    },
    {
      method: 'GET',
      pattern: '/v1/sandbox/:id/processes/:processId/logs',
      async handle(request, response) {
        request.raw.resume();
        await streamLogs(find(containerOf(request), request.params.processId), request.url.searchParams, response);
      },
    },
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/processes/:processId/kill',
      async handle(request, response) {
        const container = containerOf(request);
        const entry = find(container, request.params.processId);
        let signal = 15;
        if (request.headers['content-type']) {
          const body = await jsonBody(request);
          if (!isRecord(body)) throw invalidRequest('Request body must be an object');
          if (body.signal !== undefined) {
            const given = body.signal;
            if (typeof given !== 'number' || !Number.isInteger(given) || given < 1 || given > 64) {
              throw invalidRequest('signal must be an integer between 1 and 64');
            }
            signal = given;
          }
        } else request.raw.resume();
        if (entry.state === 'running') {
          // bash's kill takes any signal number (`-n`), real-time ones included; the group first.
          const kill = [
            '/bin/bash',
            '-c',
            'kill -n "$1" -- "-$2" 2>/dev/null || kill -n "$1" "$2" 2>/dev/null; exit 0',
            'kill',
            String(signal),
            String(entry.pid),
          ];
          await container.local.run(kill).catch(() => undefined);
        }
        sendEmpty(response, 204);
      },
    },
  ];
}
