/**
 * A command run by the in-machine runner (fly-scripts.ts), seen as a `SandboxProcess`: it started
 * detached at `exec()` time; a loop of waiting execs (each shorter than Fly's exec timeout) learns
 * its exit; its output is read from the machine's files after that, chunk by chunk as the streams
 * are pulled (so host memory stays bounded); stdin writes are execs that feed its FIFO.
 */
import {
  SandboxError,
  SandboxNotFoundError,
  SandboxProviderError,
  parseStartReport,
  signalFromExitCode,
  type ExitStatus,
  type ProcessOutcome,
  type SandboxLifecycle,
  type SandboxProcess,
  type SandboxSignal,
} from '../../src/kit/index.js';
import type { FlyExecResponse } from './fly-client.js';
import {
  flyCloseStdinArgv,
  flyFeedStdinArgv,
  flyForgetExecArgv,
  flyInlineOutputBytes,
  flyReadOutputArgv,
  flyUnknownExecExit,
  flyWaitArgv,
} from './fly-scripts.js';

const provider = 'fly';

/** How long one waiting exec waits in the machine, in seconds (well inside Fly's exec timeout). */
export const flyWaitSeconds = 20;
export { flyInlineOutputBytes };
/** Bytes of output (or stdin) per exec after that: base64 grows it by a third, far below Fly's request limits. */
export const flyChunkBytes = 4 * 1024 * 1024;

/** What a process needs of its sandbox: one buffered Fly exec, checked against the sandbox's life. */
export interface FlyExecHost {
  readonly lifecycle: SandboxLifecycle;
  direct(
    argv: readonly string[],
    options: { stdin?: string; timeoutSeconds: number; operation: string; signal?: AbortSignal | undefined },
  ): Promise<FlyExecResponse>;
}

export interface ExitInfo {
  status: ExitStatus;
  outBytes: number;
  errBytes: number;
  inline: { out: Uint8Array; err: Uint8Array } | undefined;
}

/** Parses the waiting exec's answer: `running`, or the exit line and possibly the inline output. */
export function parseWaitAnswer(stdout: string): ExitInfo | 'running' {
  const lines = stdout.split('\n');
  if (lines[0] === 'running') return 'running';
  const match = /^exit (\d+) (\d+) (\d+)$/.exec(lines[0] ?? '');
  if (!match) throw new SandboxProviderError({ message: `The Fly exec runner answered ${JSON.stringify(stdout.slice(0, 200))}`, provider });
  const exitCode = Number(match[1]);
  const inline =
    lines[1] === 'inline' ? { out: Buffer.from(lines[2] ?? '', 'base64'), err: Buffer.from(lines[3] ?? '', 'base64') } : undefined;
  return {
    status: { exitCode, signal: signalFromExitCode(exitCode) },
    outBytes: Number(match[2]),
    errBytes: Number(match[3]),
    inline: inline && { out: new Uint8Array(inline.out), err: new Uint8Array(inline.err) },
  };
}

export class FlyProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly #host: FlyExecHost;
  readonly #outcome: ProcessOutcome;
  readonly #execId: string;
  readonly #exit: Promise<ExitInfo>;
  /** Aborts the waiting exec in flight when the sandbox ends under the command. */
  readonly #ending = new AbortController();
  #streamsLeft = 2;

  /** `early`: the exit the start's answer already carried (a short `run`). */
  constructor(host: FlyExecHost, outcome: ProcessOutcome, options: { stdinPipe: boolean; early?: ExitInfo | undefined }) {
    this.#host = host;
    this.#outcome = outcome;
    this.#execId = outcome.execId;
    // After the outcome (tracked first, so it records why): the command is over when the sandbox is.
    const untrack = host.lifecycle.track({
      sandboxEnded: () => {
        this.#ending.abort();
        outcome.exited({ exitCode: -1, signal: undefined });
      },
    });
    this.#exit = this.#waitLoop(options.early);
    void this.#exit.then(untrack, untrack);
    this.#exit.catch(() => undefined);
    this.stdin = this.#stdinStream(options.stdinPipe);
    this.stdout = this.#outputStream('out');
    this.stderr = this.#outputStream('err');
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: SandboxSignal): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill().catch(() => undefined);
  }

  /** Waiting execs until the command has exited; each one is bounded in the machine by `flyWaitSeconds`. */
  async #waitLoop(early: ExitInfo | undefined): Promise<ExitInfo> {
    if (early) {
      this.#outcome.exited(early.status);
      return early;
    }
    const lifecycle = this.#host.lifecycle;
    for (;;) {
      if (this.#outcome.done) throw this.#outcome.failed ?? lifecycle.notFound();
      if (lifecycle.paused) await lifecycle.whenRunning();
      let answer: FlyExecResponse;
      try {
        answer = await this.#host.direct(flyWaitArgv(this.#execId, flyWaitSeconds), {
          timeoutSeconds: flyWaitSeconds + 30,
          operation: 'exec',
          signal: this.#ending.signal,
        });
      } catch (error) {
        // A pause under a waiting exec fails it: wait again once the sandbox runs.
        if (lifecycle.isRunning() && (lifecycle.paused || (SandboxError.isInstance(error) && error.code === 'sandbox_paused'))) continue;
        const reason = lifecycle.isRunning() ? error : lifecycle.notFound('it ended while the command was running');
        this.#outcome.fail(reason);
        this.#outcome.exited({ exitCode: -1, signal: undefined });
        throw reason;
      }
      if (answer.exitCode === flyUnknownExecExit) {
        const reason = new SandboxNotFoundError({
          message: 'The command is gone from the machine (was it restarted?)',
          provider,
        });
        this.#outcome.fail(reason);
        this.#outcome.exited({ exitCode: -1, signal: undefined });
        throw reason;
      }
      const parsed = parseWaitAnswer(answer.stdout);
      if (parsed === 'running') continue;
      this.#outcome.exited(parsed.status);
      return parsed;
    }
  }

  #stdinStream(pipe: boolean): WritableStream<Uint8Array> {
    const host = this.#host;
    const execId = this.#execId;
    const outcome = this.#outcome;
    return new WritableStream<Uint8Array>(
      {
        async write(chunk) {
          if (!pipe || outcome.done) return;
          for (let offset = 0; offset < chunk.byteLength && !outcome.done; offset += flyChunkBytes) {
            const part = chunk.subarray(offset, offset + flyChunkBytes);
            await host.direct(flyFeedStdinArgv(execId), {
              stdin: Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('base64'),
              // A command that does not read blocks the feeder: Fly's timeout ends the wait.
              timeoutSeconds: 300,
              operation: 'exec.stdin',
            });
          }
        },
        async close() {
          if (!pipe || outcome.done) return;
          await host.direct(flyCloseStdinArgv(execId), { timeoutSeconds: 30, operation: 'exec.stdin' }).catch((error: unknown) => {
            if (!outcome.done) throw error;
          });
        },
      },
      { highWaterMark: 1 },
    );
  }

  #outputStream(stream: 'out' | 'err'): ReadableStream<Uint8Array> {
    let offset = 0;
    let inlineSent = false;
    const done = () => {
      if (--this.#streamsLeft === 0) void this.#forget();
    };
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          let info: ExitInfo;
          try {
            info = await this.#exit;
          } catch {
            // wait() carries why; the streams just end.
            controller.close();
            return;
          }
          if (info.inline) {
            const bytes = stream === 'out' ? info.inline.out : info.inline.err;
            if (!inlineSent && bytes.byteLength > 0) {
              inlineSent = true;
              controller.enqueue(bytes);
              return;
            }
            controller.close();
            return;
          }
          const total = stream === 'out' ? info.outBytes : info.errBytes;
          if (offset >= total) {
            controller.close();
            done();
            return;
          }
          try {
            const answer = await this.#host.direct(
              flyReadOutputArgv(this.#execId, stream, Math.min(flyChunkBytes, total - offset), offset),
              {
                timeoutSeconds: 60,
                operation: 'exec.output',
              },
            );
            if (answer.exitCode !== 0)
              throw new SandboxProviderError({ message: `Reading the command's output failed (exit ${answer.exitCode})`, provider });
            const bytes = new Uint8Array(Buffer.from(answer.stdout, 'base64'));
            if (bytes.byteLength === 0) {
              controller.close();
              done();
              return;
            }
            offset += bytes.byteLength;
            controller.enqueue(bytes);
          } catch (error) {
            controller.error(error);
          }
        },
        cancel: () => {
          done();
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** The command's files in the machine are dropped once both streams are read (or cancelled). */
  async #forget(): Promise<void> {
    const info = await this.#exit.catch(() => undefined);
    if (!info || info.inline || !this.#host.lifecycle.isRunning()) return;
    await this.#host.direct(flyForgetExecArgv(this.#execId), { timeoutSeconds: 30, operation: 'exec' }).catch(() => undefined);
  }
}

/** The start exec's answer as the wrapper's report. */
export function flyStartReport(stdout: string): ReturnType<typeof parseStartReport> {
  const newline = stdout.indexOf('\n');
  return parseStartReport(new TextEncoder().encode(newline < 0 ? stdout : stdout.slice(0, newline)));
}
