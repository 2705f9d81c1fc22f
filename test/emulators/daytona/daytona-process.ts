/**
 * The daemon's process API (`/toolbox/<sandboxId>/process/...`, the SDK's `sandbox.process`):
 * - `POST /process/execute` `{ command, cwd, envs, timeout }` runs the command through `sh -c`
 *   and answers once it exits with `{ exitCode, result }`, stdout and stderr merged in the order
 *   they came. `timeout` is in seconds (0 or absent: none); when it runs out the command is
 *   killed and the answer is a 408 with code `PROCESS_EXECUTION_TIMEOUT`.
 * - sessions: create (`{ sessionId }`, 409 when it exists), list, get (its commands with their
 *   exit codes), delete (kills what still runs). A command runs in the session's shell state: it
 *   starts in the directory the previous command ended in, with the variables it exported
 *   (Daytona's session is one long-lived shell; here each command is its own `bash`, which
 *   restores and saves that state, so non-exported variables and shell functions do not carry
 *   over). `POST …/exec` `{ command, runAsync }` answers at once with `{ cmdId }` when async, else
 *   once the command exited with its output. `GET …/command/:cid` gives `exitCode` once it
 *   exited; `GET …/logs` `{ output, stdout, stderr }`; with `?follow=true` as a WebSocket
 *   (daytona-sockets.ts), each chunk one binary frame prefixed by `01 01 01` (stdout) or
 *   `02 02 02` (stderr), closed (1000) after the last byte once the command exited.
 *   `POST …/input` `{ data }` writes to the command's stdin (a 410 `COMMAND_ALREADY_COMPLETED`
 *   once it exited); stdin never ends (Daytona's input has no EOF).
 * - `POST /process/code-run` (`codeRun`): python through `python3 -c`, javascript through `node -e`
 *   (not in the default image), output merged, no charts; other languages are a 400.
 * - `/user-home-dir`, `/work-dir`, `/version`, and `POST /env` (`sandbox.updateEnv`: variables the
 *   daemon adds to every later process).
 */
import type { ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { z } from 'zod';
import { SandboxTimeoutError, type SandboxProcess } from '../../../src/kit/index.js';
import { CommandLog } from './daytona-command-log.js';
import { HttpError, sendJson, type DaytonaRequest, type DaytonaRoute } from './daytona-http.js';
import type { DaytonaSandbox, DaytonaState } from './daytona-state.js';

/** One command of a session. */
export interface SessionCommand {
  readonly id: string;
  readonly command: string;
  readonly process: SandboxProcess;
  readonly log: CommandLog;
  exitCode: number | undefined;
  readonly exited: Promise<number>;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
}

export interface Session {
  readonly id: string;
  readonly commands: Map<string, SessionCommand>;
  deleted: boolean;
}

const sessionsKey = 'sessions';

export function sessionsOf(sandbox: DaytonaSandbox): Map<string, Session> {
  let sessions = sandbox.extra.get(sessionsKey) as Map<string, Session> | undefined;
  if (!sessions) {
    sessions = new Map();
    sandbox.extra.set(sessionsKey, sessions);
  }
  return sessions;
}

function session(sandbox: DaytonaSandbox, id: string): Session {
  const found = sessionsOf(sandbox).get(id);
  if (!found) throw new HttpError(404, `session ${id} not found`, 'NOT_FOUND');
  return found;
}

function command(sandbox: DaytonaSandbox, sessionId: string, commandId: string): SessionCommand {
  const found = session(sandbox, sessionId).commands.get(commandId);
  if (!found) throw new HttpError(404, `command ${commandId} not found in session ${sessionId}`, 'NOT_FOUND');
  return found;
}

/** The session's shell state lives here in the sandbox. */
function stateDirectory(sessionId: string): string {
  return `/tmp/.daytona-session-${Buffer.from(sessionId).toString('hex').slice(0, 64)}`;
}

// Restores the directory and the exported variables the session's previous command left, runs
// the command in this shell (so `cd` and `export` count), and saves them again on the way out.
// The state directory and the command come in the environment, not in argv, and are unset before
// the command runs: Daytona's daemon types commands into a long-lived shell, so no process's
// argv shows a session command's text (a process listing before and after a command agrees).
const sessionScript = [
  '__daytona_state=$DAYTONA_EMULATOR_SESSION_STATE',
  '__daytona_command=$DAYTONA_EMULATOR_SESSION_COMMAND',
  'unset DAYTONA_EMULATOR_SESSION_STATE DAYTONA_EMULATOR_SESSION_COMMAND',
  'mkdir -p "$__daytona_state"',
  '[ -f "$__daytona_state/env" ] && . "$__daytona_state/env" 2>/dev/null',
  '[ -f "$__daytona_state/cwd" ] && cd "$(cat "$__daytona_state/cwd")" 2>/dev/null',
  `trap '__daytona_rc=$?; pwd > "$__daytona_state/cwd"; export -p > "$__daytona_state/env"; exit $__daytona_rc' EXIT`,
  'eval "$__daytona_command"',
].join('\n');

function exitCodeOf(status: { exitCode: number }): number {
  return status.exitCode;
}

/** Starts a command in a session and registers it. */
async function startSessionCommand(state: DaytonaState, sandbox: DaytonaSandbox, found: Session, text: string): Promise<SessionCommand> {
  const { local } = state.running(sandbox.id);
  const process = await local.exec(['bash', '-c', sessionScript, 'daytona-session'], {
    env: { ...sandbox.daemonEnv, DAYTONA_EMULATOR_SESSION_STATE: stateDirectory(found.id), DAYTONA_EMULATOR_SESSION_COMMAND: text },
  });
  const log = new CommandLog({ stdout: process.stdout, stderr: process.stderr });
  const id = crypto.randomUUID();
  const exited = process.wait().then(exitCodeOf, () => -1);
  const entry: SessionCommand = { id, command: text, process, log, exitCode: undefined, exited, stdin: process.stdin.getWriter() };
  entry.stdin.closed.catch(() => undefined);
  void exited.then((code) => {
    entry.exitCode = code;
    state.touch(sandbox);
  });
  found.commands.set(id, entry);
  return entry;
}

/** Waits until the command exited and its output was all read from the sandbox. */
async function settled(entry: SessionCommand): Promise<void> {
  await entry.exited;
  const cursor = entry.log.follow();
  try {
    while ((await entry.log.read(cursor)) !== null) {
      // Drained: the text comes from the log itself.
    }
  } finally {
    entry.log.leave(cursor);
  }
}

const executeSchema = z.object({
  command: z.string(),
  cwd: z.string().optional(),
  envs: z.record(z.string(), z.string()).optional(),
  timeout: z.number().min(0).optional(),
});

async function execute(state: DaytonaState, request: DaytonaRequest, response: ServerResponse): Promise<void> {
  const { sandbox, local } = state.running(request.params.sandboxId!);
  const parsed = executeSchema.safeParse(await request.json());
  if (!parsed.success) throw new HttpError(400, `invalid request body: ${parsed.error.issues[0]!.message}`, 'INVALID_REQUEST_BODY');
  const body = parsed.data;
  if (body.command.trim() === '') throw new HttpError(400, 'command is required', 'BAD_REQUEST');
  const cwd = body.cwd ? (posix.isAbsolute(body.cwd) ? body.cwd : posix.join(sandbox.localOptions.workdir ?? '/', body.cwd)) : undefined;
  const process = await local.exec(['sh', '-c', body.command], {
    env: { ...sandbox.daemonEnv, ...body.envs },
    ...(cwd && { cwd }),
    ...(body.timeout && { timeoutMs: body.timeout * 1000 }),
  });
  // The command never reads input here: close its stdin so it sees EOF.
  await process.stdin.close().catch(() => undefined);
  const log = new CommandLog({ stdout: process.stdout, stderr: process.stderr });
  let exitCode: number;
  try {
    exitCode = (await process.wait()).exitCode;
  } catch (error) {
    if (SandboxTimeoutError.isInstance(error)) {
      throw new HttpError(408, `command execution timeout after ${body.timeout} seconds`, 'PROCESS_EXECUTION_TIMEOUT');
    }
    if (error instanceof Error && /directory/i.test(error.message)) throw new HttpError(400, error.message, 'BAD_REQUEST');
    throw error;
  }
  const cursor = log.follow();
  while ((await log.read(cursor)) !== null) {
    // Drain the rest of the output.
  }
  log.leave(cursor);
  sendJson(response, 200, { exitCode, result: log.text().output });
}

const codeRunSchema = z.object({
  code: z.string(),
  language: z.string().min(1),
  argv: z.array(z.string()).optional(),
  envs: z.record(z.string(), z.string()).optional(),
  timeout: z.number().min(0).optional(),
});

/** The interpreter of each language `codeRun` takes (the sandbox's `code-toolbox-language` label). */
const interpreters: Record<string, (code: string, argv: string[]) => string[]> = {
  python: (code, argv) => ['python3', '-c', code, ...argv],
  javascript: (code, argv) => ['node', '-e', code, '--', ...argv],
};

/** `POST /process/code-run`: the code through the language's interpreter, output merged as for execute. */
async function codeRun(state: DaytonaState, request: DaytonaRequest, response: ServerResponse): Promise<void> {
  const { sandbox, local } = state.running(request.params.sandboxId!);
  const parsed = codeRunSchema.safeParse(await request.json());
  if (!parsed.success) throw new HttpError(400, `invalid request body: ${parsed.error.issues[0]!.message}`, 'INVALID_REQUEST_BODY');
  const body = parsed.data;
  const argv = interpreters[body.language]?.(body.code, body.argv ?? []);
  if (!argv) {
    throw new HttpError(
      400,
      `The Daytona emulator runs code in ${Object.keys(interpreters).join(' and ')} only (the default image has no ${body.language} toolchain)`,
      'BAD_REQUEST',
    );
  }
  const process = await local
    .exec(argv, { env: { ...sandbox.daemonEnv, ...body.envs }, ...(body.timeout && { timeoutMs: body.timeout * 1000 }) })
    .catch((error: unknown) => {
      throw new HttpError(400, error instanceof Error ? error.message : String(error), 'BAD_REQUEST');
    });
  await process.stdin.close().catch(() => undefined);
  const log = new CommandLog({ stdout: process.stdout, stderr: process.stderr });
  let exitCode: number;
  try {
    exitCode = (await process.wait()).exitCode;
  } catch (error) {
    if (SandboxTimeoutError.isInstance(error)) {
      throw new HttpError(408, `code execution timeout after ${body.timeout} seconds`, 'PROCESS_EXECUTION_TIMEOUT');
    }
    throw error;
  }
  const cursor = log.follow();
  while ((await log.read(cursor)) !== null) {
    // Drain the rest of the output.
  }
  log.leave(cursor);
  sendJson(response, 200, { exitCode, result: log.text().output, artifacts: { charts: [] } });
}

export function processRoutes(state: DaytonaState): DaytonaRoute[] {
  const sandboxOf = (request: DaytonaRequest) => state.running(request.params.sandboxId!).sandbox;
  return [
    { method: 'POST', pattern: '/process/execute', handle: (request, response) => execute(state, request, response) },
    { method: 'POST', pattern: '/process/code-run', handle: (request, response) => codeRun(state, request, response) },
    // Sandboxes here have no entrypoint process: say so rather than answer "session not found".
    ...['/process/session/entrypoint', '/process/session/entrypoint/logs'].map(
      (pattern): DaytonaRoute => ({
        method: 'GET',
        pattern,
        async handle(request) {
          throw new HttpError(
            501,
            `The Daytona emulator (toolbox) does not implement GET ${request.url.pathname}: its sandboxes run no entrypoint`,
          );
        },
      }),
    ),
    {
      method: 'POST',
      pattern: '/process/session',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        const body = z.object({ sessionId: z.string().min(1) }).safeParse(await request.json());
        if (!body.success) throw new HttpError(400, 'sessionId is required', 'INVALID_REQUEST_BODY');
        const sessions = sessionsOf(sandbox);
        if (sessions.has(body.data.sessionId)) throw new HttpError(409, `session ${body.data.sessionId} already exists`, 'CONFLICT');
        sessions.set(body.data.sessionId, { id: body.data.sessionId, commands: new Map(), deleted: false });
        response.writeHead(201).end();
      },
    },
    {
      method: 'GET',
      pattern: '/process/session',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        sendJson(response, 200, [...sessionsOf(sandbox).values()].map(sessionDto));
      },
    },
    {
      method: 'GET',
      pattern: '/process/session/:sessionId',
      handle: async (request, response) => sendJson(response, 200, sessionDto(session(sandboxOf(request), request.params.sessionId!))),
    },
    {
      method: 'DELETE',
      pattern: '/process/session/:sessionId',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        const found = session(sandbox, request.params.sessionId!);
        await endSession(found);
        sessionsOf(sandbox).delete(found.id);
        response.writeHead(204).end();
      },
    },
    {
      method: 'POST',
      pattern: '/process/session/:sessionId/exec',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        const found = session(sandbox, request.params.sessionId!);
        const parsed = z
          .object({
            command: z.string(),
            runAsync: z.boolean().optional(),
            async: z.boolean().optional(),
            suppressInputEcho: z.boolean().optional(),
          })
          .safeParse(await request.json());
        if (!parsed.success) throw new HttpError(400, 'command is required', 'INVALID_REQUEST_BODY');
        const body = parsed.data;
        const entry = await startSessionCommand(state, sandbox, found, body.command);
        if (body.runAsync || body.async) {
          sendJson(response, 202, { cmdId: entry.id });
          return;
        }
        await settled(entry);
        const text = entry.log.text();
        sendJson(response, 200, { cmdId: entry.id, exitCode: entry.exitCode, ...text });
      },
    },
    {
      method: 'GET',
      pattern: '/process/session/:sessionId/command/:commandId',
      async handle(request, response) {
        const entry = command(sandboxOf(request), request.params.sessionId!, request.params.commandId!);
        sendJson(response, 200, commandDto(entry));
      },
    },
    {
      method: 'GET',
      pattern: '/process/session/:sessionId/command/:commandId/logs',
      async handle(request, response) {
        const entry = command(sandboxOf(request), request.params.sessionId!, request.params.commandId!);
        if (request.url.searchParams.get('follow') === 'true') {
          throw new HttpError(400, 'follow=true needs a WebSocket upgrade', 'BAD_REQUEST');
        }
        sendJson(response, 200, entry.log.text());
      },
    },
    {
      method: 'POST',
      pattern: '/process/session/:sessionId/command/:commandId/input',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        const found = session(sandbox, request.params.sessionId!);
        if (found.deleted) throw new HttpError(410, `session ${found.id} has ended`, 'SESSION_ENDED');
        const entry = command(sandbox, found.id, request.params.commandId!);
        const body = z.object({ data: z.string() }).safeParse(await request.json());
        if (!body.success) throw new HttpError(400, 'data is required', 'INVALID_REQUEST_BODY');
        if (entry.exitCode !== undefined)
          throw new HttpError(410, `command ${entry.id} has already completed`, 'COMMAND_ALREADY_COMPLETED');
        await entry.stdin.write(new TextEncoder().encode(body.data.data)).catch(() => undefined);
        response.writeHead(200).end();
      },
    },
    {
      method: 'GET',
      pattern: '/user-home-dir',
      handle: async (request, response) => sendJson(response, 200, { dir: sandboxOf(request).home }),
    },
    {
      method: 'GET',
      pattern: '/work-dir',
      handle: async (request, response) => {
        const sandbox = sandboxOf(request);
        sendJson(response, 200, { dir: sandbox.localOptions.workdir ?? sandbox.home });
      },
    },
    { method: 'GET', pattern: '/version', handle: async (_request, response) => sendJson(response, 200, { version: '0.218.0' }) },
    {
      method: 'POST',
      pattern: '/env',
      async handle(request, response) {
        const sandbox = sandboxOf(request);
        const body = z
          .object({ set: z.record(z.string(), z.string()).optional(), unset: z.array(z.string()).optional() })
          .safeParse(await request.json());
        if (!body.success) throw new HttpError(400, 'set and unset must be an object and a list', 'INVALID_REQUEST_BODY');
        Object.assign(sandbox.daemonEnv, body.data.set);
        for (const name of body.data.unset ?? []) delete sandbox.daemonEnv[name];
        response.writeHead(200).end();
      },
    },
  ];
}

function commandDto(entry: SessionCommand) {
  return { id: entry.id, command: entry.command, ...(entry.exitCode !== undefined && { exitCode: entry.exitCode }) };
}

function sessionDto(found: Session) {
  return { sessionId: found.id, commands: [...found.commands.values()].map(commandDto) };
}

/** Kills what still runs in a session (deleting it, or the sandbox stopping). */
export async function endSession(found: Session): Promise<void> {
  found.deleted = true;
  await Promise.all(
    [...found.commands.values()].map(async (entry) => {
      if (entry.exitCode !== undefined) return;
      await entry.process.kill('SIGKILL').catch(() => undefined);
      // The delete answers once the command is gone, as the daemon's does.
      await entry.exited;
    }),
  );
}

/** Forgets the sessions of a sandbox whose processes ended. */
export async function dropSessions(sandbox: DaytonaSandbox): Promise<void> {
  const sessions = sessionsOf(sandbox);
  for (const found of sessions.values()) await endSession(found);
  sessions.clear();
}

/** A command's log, for the followed-log WebSocket. */
export function commandForLogs(state: DaytonaState, sandboxId: string, sessionId: string, commandId: string): SessionCommand {
  const { sandbox } = state.running(sandboxId);
  return command(sandbox, sessionId, commandId);
}
