/**
 * One command on Vercel: a detached `runCommand` whose NDJSON log stream is pumped into our stdout
 * and stderr one line at a time. The pump waits while a stream's reader is behind (a bounded
 * queue), and the log stream is read only as the pump asks for lines (vercel-logs.ts, not the
 * SDK's `logs()`, which reads ahead without bound), so a slow reader holds the HTTP stream and
 * then the command back. Its exit comes from `command.wait()` once the log stream ends.
 *
 * Vercel carries no stdin: the command runs with `/dev/null` as its input (the kit's wrapper in
 * `null` mode), a write to `stdin` is `SandboxCapabilityUnsupportedError` (`exec.stdin`), and
 * closing it resolves (the command has had its end of input from the start).
 *
 * Vercel's log lines are text (JSON strings): output is passed on as the UTF-8 of that text, so
 * bytes that are not UTF-8 arrive as U+FFFD, as the service decoded them.
 */
import type { Command as VercelCommand } from '@vercel/sandbox';
import {
  SandboxProviderError,
  type PumpedOutput,
  type ExitStatus,
  type ProcessOutcome,
  type SandboxError,
  type SandboxProcess,
} from '../../src/kit/index.js';
import { vercelLogLines } from './vercel-logs.js';
import { vercelExitStatus, vercelNoStdinError } from './vercel-options.js';

/**
 * Feeds a command's logs into the outputs until it ends, then settles `outcome` with its exit
 * code. A log stream that fails (the connection dropped, the session stopped) fails the command
 * with the mapped error, unless the outcome already knows why (the sandbox ended, the caller
 * aborted).
 */
export async function pumpVercelCommand(
  command: VercelCommand,
  outputs: { stdout: PumpedOutput; stderr: PumpedOutput },
  outcome: ProcessOutcome,
  mapError: (error: unknown) => SandboxError,
  signal: AbortSignal,
): Promise<void> {
  const encoder = new TextEncoder();
  const end = () => {
    outputs.stdout.end();
    outputs.stderr.end();
  };
  try {
    for await (const line of vercelLogLines(command, signal)) await outputs[line.stream].push(encoder.encode(line.data));
    const finished = await command.wait({ signal });
    end();
    outcome.exited(vercelExitStatus(finished.exitCode));
  } catch (error) {
    const mapped = SandboxProviderError.isInstance(error) ? error : mapError(error);
    if (outcome.failed !== undefined) end();
    else {
      outputs.stdout.error(mapped);
      outputs.stderr.error(mapped);
    }
    outcome.fail(mapped);
    outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
  }
}

/** One command in a Vercel sandbox; its outcome is the kit's. */
export class VercelSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** The SDK's `Command`, for escape (its `cmdId`, `kill`). */
  readonly native: VercelCommand;
  readonly #outcome: ProcessOutcome;

  constructor(init: {
    stdout: ReadableStream<Uint8Array>;
    stderr: ReadableStream<Uint8Array>;
    outcome: ProcessOutcome;
    native: VercelCommand;
  }) {
    this.#outcome = init.outcome;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.native = init.native;
    this.stdin = noStdin();
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: Parameters<SandboxProcess['kill']>[0]): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill().catch(() => undefined);
  }
}

/** The stdin of a Vercel command: see the module doc. */
export function noStdin(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: () => {
      throw vercelNoStdinError('a write to SandboxProcess.stdin');
    },
  });
}
