/**
 * Commands of a session: `POST /v2/sandboxes/sessions/:id/cmd` (detached, or `wait: true`: one
 * NDJSON stream of `{ command }`, the log lines, then `{ command }` with its exit code), its
 * status (`?wait=true` waits for the exit), its NDJSON logs, and kill.
 *
 * How a command runs in the local sandbox (a launcher, so that its pid is the command's own):
 * - argv as given, no shell; `cwd` (default `/vercel/sandbox`, relative paths against it);
 *   environment: the sandbox's `env`, then the command's, over HOME, USER and LOGNAME of the
 *   default user `vercel-sandbox` (`root` with `sudo: true`). The local sandbox has no uid but
 *   root, so `id -un` says root either way; the user is emulated by the environment only.
 * - a program that is not found exits 127 with `<name>: command not found` on stderr, and a
 *   working directory that does not exist exits 1 with `cwd <path>: No such file or directory`
 *   (what a process runner answers; the call itself succeeds);
 * - killed by a signal, the exit code is 128 + its number;
 * - `timeout` (ms) kills it with SIGKILL when it runs longer.
 * Output: each stream is an `OutputPipe` (../shared/output-pipe.ts) feeding the command's log
 * history (vercel-log-history.ts): every logs reader gets the lines from the first, as on Vercel,
 * within an 8 MiB window; a command that prints more while nobody reads stalls, as it would on a
 * full pipe. When the session stops under a command, its streams end with an
 * `{ stream: 'error', data: { code: 'sandbox_stopped', … } }` line.
 */
import { constants as osConstants } from 'node:os';
import { posix } from 'node:path';
import type { ServerResponse } from 'node:http';
import type { SandboxProcess, SandboxSignal } from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { OutputPipe } from '../shared/output-pipe.js';
import {
  HttpError,
  NdjsonWriter,
  badRequest,
  optionalBoolean,
  optionalNumber,
  optionalString,
  optionalStringRecord,
  sendJson,
  type VercelRoute,
} from './vercel-http.js';
import { defaultCwd, defaultUser } from './vercel-images.js';
import { LogHistory } from './vercel-log-history.js';
import type { VercelSession, VercelState } from './vercel-state.js';

export interface CommandRecord {
  readonly id: string;
  readonly name: string;
  readonly args: string[];
  readonly cwd: string;
  readonly sessionId: string;
  readonly startedAt: number;
  exitCode: number | null;
  durationMs: number | undefined;
  /** Why it has no exit code although it ended: the session stopped under it. */
  gone: string | undefined;
  readonly process: SandboxProcess;
  readonly stdout: OutputPipe;
  readonly stderr: OutputPipe;
  /** Its log lines, replayed from the start to every reader (bounded: see vercel-log-history.ts). */
  readonly history: LogHistory;
  /** Resolves once it ended (exit code or gone). */
  readonly ended: Promise<void>;
}

/**
 * The launcher, run by `sh -c` with `$1` the working directory and the argv after it. It reports
 * a missing directory or program the way a process runner does, then `exec`s the command.
 */
const launcher = [
  'cd "$1" 2>/dev/null || { printf "cwd %s: No such file or directory\\n" "$1" >&2; exit 1; }',
  'shift',
  'case $1 in */*) [ -x "$1" ] && [ ! -d "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac || { printf "%s: command not found\\n" "$1" >&2; exit 127; }',
  'exec "$@"',
].join('\n');

function userEnvironment(sudo: boolean): Record<string, string> {
  const user = sudo ? 'root' : defaultUser;
  return { HOME: sudo ? '/root' : `/home/${defaultUser}`, USER: user, LOGNAME: user };
}

function signalName(signal: number): SandboxSignal {
  const entry = Object.entries(osConstants.signals).find(([, number]) => number === signal);
  if (!entry) throw badRequest('signal', `${signal} is not a signal number`);
  return entry[0] as SandboxSignal;
}

function commandBody(command: CommandRecord): Record<string, unknown> {
  return {
    id: command.id,
    name: command.name,
    args: command.args,
    cwd: command.cwd,
    sessionId: command.sessionId,
    exitCode: command.exitCode,
    durationMs: command.durationMs,
    startedAt: command.startedAt,
  };
}

function finishedBody(command: CommandRecord, session: VercelSession): Record<string, unknown> {
  if (command.exitCode === null) {
    throw new HttpError(410, 'sandbox_stopped', `Session ${session.id} stopped before command ${command.id} finished`);
  }
  return commandBody(command);
}

async function startCommand(state: VercelState, session: VercelSession, body: Record<string, unknown>): Promise<CommandRecord> {
  const running = state.runningSession(session.id);
  const name = optionalString(body, 'command');
  if (!name) throw badRequest('command', 'is required');
  const argsValue = body.args ?? [];
  if (!Array.isArray(argsValue) || argsValue.some((arg) => typeof arg !== 'string'))
    throw badRequest('args', 'must be an array of strings');
  const args = argsValue as string[];
  const requestedCwd = optionalString(body, 'cwd');
  const cwd = requestedCwd === undefined ? defaultCwd : posix.resolve(defaultCwd, requestedCwd);
  const env = optionalStringRecord(body, 'env') ?? {};
  const sudo = optionalBoolean(body, 'sudo') ?? false;
  const timeout = optionalNumber(body, 'timeout');
  const startedAt = state.now();
  const process = await state.whileRunning(session, () =>
    running.entry.local.exec(['/bin/sh', '-c', launcher, 'launcher', cwd, name, ...args], {
      cwd: '/',
      env: { ...userEnvironment(sudo), ...session.sandbox.env, ...env },
    }),
  );
  void process.stdin.close().catch(() => undefined);
  const stdout = new OutputPipe(process.stdout);
  const stderr = new OutputPipe(process.stderr);
  const record: CommandRecord = {
    id: `cmd_${randomToken(24)}`,
    name,
    args,
    cwd,
    sessionId: session.id,
    startedAt,
    exitCode: null,
    durationMs: undefined,
    gone: undefined,
    process,
    stdout,
    stderr,
    history: new LogHistory({ stdout, stderr }),
    ended: process.wait().then(
      (status) => {
        const number = status.signal ? (osConstants.signals[status.signal as NodeJS.Signals] ?? 9) : undefined;
        record.exitCode = number === undefined ? status.exitCode : 128 + number;
        record.durationMs = Date.now() - startedAt;
      },
      (error: unknown) => {
        record.gone = error instanceof Error ? error.message : String(error);
      },
    ),
  };
  if (timeout !== undefined && timeout > 0) {
    const timer = setTimeout(() => void process.kill('SIGKILL').catch(() => undefined), timeout);
    timer.unref();
    void record.ended.then(() => clearTimeout(timer));
  }
  session.commands.set(record.id, record);
  return record;
}

/**
 * Writes the command's log lines from the first (as many as the history kept) until its output
 * ends or the client goes away, then an error line when the session stopped under the command.
 */
async function pumpLogs(command: CommandRecord, session: VercelSession, writer: NdjsonWriter): Promise<void> {
  for await (const entry of command.history.read(() => writer.gone)) {
    if (!(await writer.write({ stream: entry.stream, data: entry.data }))) return;
  }
  await command.ended;
  if (command.exitCode === null && !writer.gone) {
    await writer.write({
      stream: 'error',
      data: { code: 'sandbox_stopped', message: `Session ${session.id} stopped before command ${command.id} finished` },
    });
  }
}

function command(state: VercelState, sessionId: string, commandId: string): { session: VercelSession; command: CommandRecord } {
  const session = state.session(sessionId);
  const found = session.commands.get(commandId);
  if (!found) throw new HttpError(404, 'not_found', `Command "${commandId}" not found in session ${sessionId}`);
  return { session, command: found };
}

export function commandRoutes(state: VercelState): VercelRoute[] {
  return [
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/cmd',
      async handle(request, response) {
        const session = state.session(request.params.sessionId!);
        const body = await request.json();
        const record = await startCommand(state, session, body);
        if (body.wait !== true) return sendJson(response, 200, { command: commandBody(record) });
        const writer = new NdjsonWriter(response);
        await writer.write({ command: commandBody(record) });
        await pumpLogs(record, session, writer);
        if (record.exitCode !== null) await writer.write({ command: commandBody(record) });
        writer.end();
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/sessions/:sessionId/cmd/:cmdId',
      async handle(request, response) {
        const found = command(state, request.params.sessionId!, request.params.cmdId!);
        if (request.url.searchParams.get('wait') !== 'true') return sendJson(response, 200, { command: commandBody(found.command) });
        await waitUnlessGone(found.command, response);
        sendJson(response, 200, { command: finishedBody(found.command, found.session) });
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/sessions/:sessionId/cmd/:cmdId/logs',
      async handle(request, response) {
        const found = command(state, request.params.sessionId!, request.params.cmdId!);
        const writer = new NdjsonWriter(response);
        await pumpLogs(found.command, found.session, writer);
        writer.end();
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/cmd/:cmdId/kill',
      async handle(request, response) {
        const found = command(state, request.params.sessionId!, request.params.cmdId!);
        const body = await request.json();
        const signal = optionalNumber(body, 'signal') ?? 15;
        if (found.command.exitCode === null && found.command.gone === undefined) {
          await found.command.process.kill(signalName(signal)).catch(() => undefined);
        }
        sendJson(response, 200, { command: commandBody(found.command) });
      },
    },
  ];
}

/** Waits for the command's end; gives up (quietly) when the client went away meanwhile. */
async function waitUnlessGone(command: CommandRecord, response: ServerResponse): Promise<void> {
  let onClose: (() => void) | undefined;
  const closed = new Promise<void>((resolve) => {
    onClose = resolve;
    response.on('close', resolve);
  });
  await Promise.race([command.ended, closed]);
  response.off('close', onClose!);
}
