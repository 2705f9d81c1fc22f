/**
 * One command in an E2B sandbox, on the SDK's `commands.run` (pipes) or `pty.create` (a terminal).
 *
 * The SDK delivers output through callbacks, and awaits each callback before it reads the next
 * event off the wire: the callbacks here push into the kit's bounded `PumpedOutput` streams and,
 * when a stream's queue is full, return a promise that resolves once its reader drained it, so
 * backpressure reaches envd (and the command) instead of growing this process. The SDK's handle
 * also appends every chunk to its own `stdout`/`stderr` strings for as long as the command runs;
 * those are emptied after each chunk here, or a long output would sit in memory twice.
 *
 * The SDK decodes pipe output as UTF-8 before handing it over (its callbacks take strings): it
 * is encoded back here, so bytes that are not valid UTF-8 arrive as U+FFFD. A terminal's output
 * arrives as bytes.
 */
import type { CommandHandle, Sandbox as E2bSdkSandbox } from 'e2b';
import {
  type ProcessOutcome,
  type SandboxError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkPtySize,
  type PumpedOutput,
  raceWithSignal,
  signalFromExitCode,
  type ExitStatus,
  type PtySize,
  type SandboxProcess,
  type SignalOptions,
} from '../../src/kit/index.js';
import { planE2bExitCode } from './e2b-options.js';

/** What `E2bSandboxProcess` needs of the sandbox. */
export interface E2bProcessInit {
  handle: CommandHandle;
  /** The output after the wrapper's start report (stdout, or the terminal's). */
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  outcome: ProcessOutcome;
  mapError: (error: unknown, operation: string) => SandboxError;
  /** Sends stdin bytes; resolves once envd took them. */
  send: (chunk: Uint8Array) => Promise<void>;
  /** End of input: closes stdin (pipes) or types Ctrl-D (a terminal). */
  close: () => Promise<void>;
  /** The command was started without stdin (a `run` without input): writes are discarded. */
  stdinNull: boolean;
  /** Where the streams were fed, to end them when the command exits. */
  outputs: PumpedOutput[];
}

/** One command in an E2B sandbox: the SDK's handle, its outcome kept by the kit. */
export class E2bSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Set for a command on a terminal (`exec` with `pty`). */
  resize?: SandboxProcess['resize'];
  readonly #outcome: ProcessOutcome;

  constructor(init: E2bProcessInit) {
    const { outcome, mapError } = init;
    this.#outcome = outcome;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    // After the command exited nothing can read its input: writes are discarded and close()
    // resolves, rather than erroring the stream.
    let chain: Promise<void> = Promise.resolve();
    const guarded = (operation: () => Promise<void>) => {
      const next = chain.then(async () => {
        if (outcome.done || init.stdinNull) return;
        try {
          await operation();
        } catch (error) {
          if (outcome.done) return;
          const mapped = mapError(error, 'stdin');
          // envd forgets a process the moment it exits: its "not found" is the exit racing the write.
          if (SandboxNotFoundError.isInstance(mapped) || /not found/i.test(String((error as Error)?.message))) return;
          throw mapped;
        }
      });
      chain = next.catch(() => undefined);
      return next;
    };
    this.stdin = new WritableStream<Uint8Array>({
      write: (chunk) => guarded(() => init.send(chunk)),
      close: () => guarded(() => init.close()),
      abort: () => void guarded(() => init.close()).catch(() => undefined),
    });
    void init.handle.wait().then(
      (result) => this.#exited(init, result.exitCode, result.error),
      (error: unknown) => {
        // The SDK throws CommandExitError for a non-zero exit: that is data, not an error.
        const exit = error as { name?: string; exitCode?: number; error?: string };
        if (exit?.name === 'CommandExitError' && typeof exit.exitCode === 'number') return this.#exited(init, exit.exitCode, exit.error);
        const mapped = mapError(error, 'exec');
        // The sandbox is gone: the command's output ends with it (its fate is wait()'s to tell).
        for (const output of init.outputs) SandboxNotFoundError.isInstance(mapped) ? output.end() : output.error(mapped);
        outcome.fail(mapped);
        outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
      },
    );
  }

  #exited(init: E2bProcessInit, exitCode: number, status: string | undefined): void {
    for (const output of init.outputs) output.end();
    const code = planE2bExitCode(exitCode, status);
    const exit: ExitStatus = { exitCode: code, signal: signalFromExitCode(code) };
    init.outcome.exited(exit);
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: Parameters<SandboxProcess['kill']>[0]): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/**
 * Resizes a terminal started with `pty.create` (the SDK's own resize: envd's `Update`). Validates
 * the size first (`SandboxInvalidArgumentError`, argument `pty.cols` or `pty.rows`); resolves at
 * once once the command has exited (idempotent).
 */
export async function resizeE2bTerminal(
  sdk: () => E2bSdkSandbox,
  pid: number,
  outcome: ProcessOutcome,
  size: unknown,
  options: SignalOptions,
  mapError: (error: unknown, operation: string) => SandboxError,
): Promise<void> {
  const checked: PtySize = checkPtySize(size, 'e2b');
  options.signal?.throwIfAborted();
  if (outcome.done) return;
  const resizing = sdk()
    .pty.resize(pid, { cols: checked.cols, rows: checked.rows }, { signal: options.signal })
    .catch((error: unknown) => {
      if (outcome.done) return;
      const mapped = mapError(error, 'resize');
      if (SandboxNotFoundError.isInstance(mapped) && outcome.done) return;
      throw mapped;
    });
  await raceWithSignal(resizing, { signal: options.signal, operation: 'resize', provider: 'e2b' });
}

/** Encodes the SDK's decoded text back into bytes (see the module doc). */
export const textBytes = (() => {
  const encoder = new TextEncoder();
  return (text: string) => encoder.encode(text);
})();

/** Empties the SDK handle's own copies of the output (see the module doc). */
export function forgetHandleOutput(handle: CommandHandle | undefined): void {
  if (!handle) return;
  const internal = handle as unknown as { _stdout?: string; _stderr?: string };
  if (internal._stdout) internal._stdout = '';
  if (internal._stderr) internal._stderr = '';
}

/** An error of the terminal's start that says the image cannot give one. */
export function terminalStartError(sandboxId: string): SandboxProviderError {
  return new SandboxProviderError({ message: `The command did not start on E2B's terminal in sandbox ${sandboxId}`, provider: 'e2b' });
}
