/**
 * `POST /v1/apps/{app}/machines/{id}/exec`: one command run to completion, its output buffered.
 *
 * Request, as Fly's Machines API takes it: `{ command: string[] }` (or the deprecated
 * `cmd: string`, split into words as a shell would, without running a shell), `timeout` in whole
 * seconds, `stdin` as one string written whole and then closed. Answer 200
 * `{ exit_code, exit_signal, stdout, stderr }` whatever the exit code (a failing command is not
 * an HTTP error); `exit_signal` is the signal number that ended it, 0 when none, and `exit_code`
 * is then 128 + that number. The output is decoded as UTF-8 into JSON strings, as Fly's API does
 * (bytes that are not UTF-8 become U+FFFD).
 *
 * Limits: without `timeout` (or 0) the command gets 30 s, the deadline after which Fly's exec is
 * reported to answer 408 `deadline_exceeded`; Fly publishes no maximum, and the emulator sets
 * none. Past its timeout the command's process tree is killed and the answer is 408
 * `{ "error": "deadline_exceeded: …" }`. Each of stdout and stderr is bounded at 16 MiB in the
 * emulator (its own bound, stated in the error): past it the command is killed and the answer is a
 * 500 naming the limit. The machine must be `started` (412 `failed_precondition` otherwise, 404
 * once destroyed); `container` is refused (the emulator runs no containers).
 */
import type { ServerResponse } from 'node:http';
import { constants as osConstants } from 'node:os';
import { z } from 'zod';
import type { SandboxProcess } from '../../../src/kit/index.js';
import { FlyHttpError, type FlyAnswer, type FlyRequest, type FlyRoute } from './fly-http.js';
import type { FlyState } from './fly-state.js';

const osSignals = osConstants.signals as Record<string, number>;

/** Seconds an exec gets when the request gives no `timeout`. */
export const defaultExecTimeoutSeconds = 30;
/** The most bytes of stdout, and of stderr, the emulator buffers for one exec: 16 MiB. */
export const maxExecOutputBytes = 16 * 1024 * 1024;

const execSchema = z.looseObject({
  command: z.array(z.string()).optional(),
  cmd: z.string().optional(),
  timeout: z.number().int().min(0).optional(),
  stdin: z.string().optional(),
  container: z.string().optional(),
});

/** Splits a command line into words as sh would (quotes, backslashes), with no expansion. */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else word += char;
    } else if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === '\\' && index + 1 < line.length && '"\\$`'.includes(line[index + 1]!)) word += line[++index];
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\' && index + 1 < line.length) {
      word += line[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote) throw new FlyHttpError(400, 'invalid_argument: cmd has an unterminated quote');
  if (inWord) words.push(word);
  return words;
}

class OutputOverflow extends Error {}

/** Reads a stream whole, failing past `limit` bytes; `cancel` stops it (a timed-out command). */
function collect(stream: ReadableStream<Uint8Array>, limit: number): { done: Promise<Buffer>; cancel(): void } {
  const reader = stream.getReader();
  const done = (async () => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done: ended, value } = await reader.read();
      if (ended) return Buffer.concat(chunks);
      total += value.byteLength;
      if (total > limit) throw new OutputOverflow(`exec output over ${limit} bytes (the Fly emulator's bound)`);
      chunks.push(value);
    }
  })();
  return { done, cancel: () => void reader.cancel().catch(() => undefined) };
}

async function runExec(state: FlyState, request: FlyRequest, response: ServerResponse): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  const parsed = execSchema.safeParse(await request.json());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FlyHttpError(400, `invalid_argument: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  const body = parsed.data;
  if (body.container) throw new FlyHttpError(400, 'invalid_argument: container: the Fly emulator runs no containers');
  const argv = body.command && body.command.length > 0 ? body.command : body.cmd !== undefined ? splitCommandLine(body.cmd) : [];
  if (argv.length === 0) throw new FlyHttpError(400, 'invalid_argument: command is required');
  const sandbox = machine.sandbox;
  if (!sandbox) throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is not started (state: ${machine.state})`);
  const seconds = body.timeout && body.timeout > 0 ? body.timeout : defaultExecTimeoutSeconds;

  let process: SandboxProcess;
  try {
    process = await sandbox.exec(argv, { cwd: '/' });
  } catch (error) {
    // A program that does not exist: the command "ran" and failed as a shell reports it.
    const message = error instanceof Error ? error.message : String(error);
    return { status: 200, body: { exit_code: 127, exit_signal: 0, stdout: '', stderr: `${message}\n` } };
  }
  let outcome = 'done' as 'done' | 'overflow';
  let overflow = '';
  const kill = () => void process.kill('SIGKILL').catch(() => undefined);
  // A client that gave up takes its command with it.
  response.on('close', () => {
    if (!response.writableFinished) kill();
  });
  const reads = [collect(process.stdout, maxExecOutputBytes), collect(process.stderr, maxExecOutputBytes)] as const;
  const output = (read: (typeof reads)[number]) =>
    read.done.catch((error: unknown) => {
      if (error instanceof OutputOverflow) {
        outcome = 'overflow';
        overflow = error.message;
        kill();
      }
      return Buffer.alloc(0);
    });
  const writer = process.stdin.getWriter();
  void (async () => {
    if (body.stdin) await writer.write(new TextEncoder().encode(body.stdin));
    await writer.close();
  })().catch(() => undefined);
  // The answer waits for the exit and for both outputs to end (a background child holding stdout
  // keeps it open), all within the timeout.
  const finished = (async () => {
    const status = await process.wait().catch(() => undefined);
    const [stdout, stderr] = await Promise.all([output(reads[0]), output(reads[1])]);
    return { status, stdout, stderr };
  })();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), seconds * 1000)));
  const result = await Promise.race([finished, deadline]);
  clearTimeout(timer);
  if (result === 'timeout') {
    kill();
    for (const read of reads) read.cancel();
    throw new FlyHttpError(408, `deadline_exceeded: the command did not finish within ${seconds}s`);
  }
  const { status, stdout, stderr } = result;
  if (outcome === 'overflow') throw new FlyHttpError(500, overflow);
  if (!status) throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} stopped during the exec`);
  const signal = status.signal ? (osSignals[status.signal] ?? 0) : 0;
  return {
    status: 200,
    body: { exit_code: status.exitCode, exit_signal: signal, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') },
  };
}

export function execRoutes(state: FlyState): FlyRoute[] {
  return [{ method: 'POST', pattern: '/v1/apps/:app/machines/:id/exec', handle: (request, response) => runExec(state, request, response) }];
}
