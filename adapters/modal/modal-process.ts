import type { ContainerProcess, Sandbox as ModalSdkSandbox } from 'modal';
import {
  type ProcessOutcome,
  SandboxError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkPtySize,
  discardOnCancel,
  raceWithSignal,
  resizeArgv,
  signalFromExitCode,
  type ExitStatus,
  type SandboxProcess,
  type SignalOptions,
} from '../../src/kit/index.js';

/** One command in a Modal sandbox: the SDK's process, its outcome kept by the kit. */
export class ModalSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Set for a command on a terminal (`exec` with `pty`): see {@link resizeModalTerminal}. */
  resize?: SandboxProcess['resize'];
  readonly #outcome: ProcessOutcome;

  constructor(
    process: ContainerProcess<Uint8Array>,
    stdout: ReadableStream<Uint8Array>,
    exit: Promise<number>,
    outcome: ProcessOutcome,
    mapError: (error: unknown, operation: string) => SandboxError,
    /** The command was started with an empty stdin: there is no input stream to feed or close. */
    stdinNull = false,
  ) {
    this.#outcome = outcome;
    // Modal's output travels over an RPC stream: a command whose reader went away would block on
    // a full buffer. A cancelled stream is drained (and discarded) instead, and a command that
    // keeps writing to it gets SIGPIPE, as it would writing to a pipe that was closed.
    const closedPipe = () => void outcome.kill('SIGPIPE').catch(() => undefined);
    this.stdout = discardOnCancel(stdout, { onKeepsWriting: closedPipe });
    this.stderr = discardOnCancel(process.stderr, { onKeepsWriting: closedPipe });
    const stdin = process.stdin.getWriter();
    stdin.closed.catch(() => undefined);
    // After the command exited nothing can read its input: writes are discarded and close()
    // resolves, rather than erroring the stream (an errored WritableStream makes close() a TypeError).
    this.stdin = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (outcome.done || stdinNull) return;
        await stdin.write(chunk).catch((error: unknown) => (outcome.done ? undefined : Promise.reject(mapError(error, 'stdin'))));
      },
      close: async () => {
        if (outcome.done || stdinNull) return;
        await stdin.close().catch((error: unknown) => (outcome.done ? undefined : Promise.reject(mapError(error, 'stdin'))));
      },
      abort: () => stdin.close().catch(() => undefined),
    });
    void exit.then(
      // Modal reports a death by signal n as 128 + n, like a shell; so does sandport.
      (code) => outcome.exited({ exitCode: code, signal: signalFromExitCode(code) }),
      (error: unknown) => {
        outcome.fail(mapError(error, 'exec'));
        outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
      },
    );
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

/** Runs the kit's marker killer in the sandbox: Modal has no kill for an exec. */
export async function killModalTree(
  sdk: ModalSdkSandbox,
  argv: string[],
  mapError: (error: unknown, operation: string) => SandboxError,
): Promise<void> {
  try {
    const killer = await sdk.exec(argv, { mode: 'binary', stdout: 'ignore', stderr: 'ignore' });
    await killer.wait();
  } catch (error) {
    const mapped = mapError(error, 'kill');
    // A sandbox that is gone has killed the command already.
    if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
  }
}

/**
 * Resizes the terminal of a command started with `pty`: Modal's SDK has no resize call, so
 * `stty -F <terminal> rows R cols C` runs as a second exec, and the kernel sends SIGWINCH to the
 * terminal's foreground job. Validates the size first (`SandboxInvalidArgumentError`, argument
 * `pty.cols` or `pty.rows`); resolves at once once the command has exited (idempotent).
 */
export async function resizeModalTerminal(
  sdk: ModalSdkSandbox,
  outcome: ProcessOutcome,
  ptyPath: string,
  size: unknown,
  options: SignalOptions,
  mapError: (error: unknown, operation: string) => SandboxError,
): Promise<void> {
  const checked = checkPtySize(size, 'modal');
  options.signal?.throwIfAborted();
  if (outcome.done) return;
  const resizing = (async () => {
    try {
      const resizer = await sdk.exec(resizeArgv(ptyPath, checked), { mode: 'binary', stdout: 'ignore' });
      const [code, stderr] = await Promise.all([resizer.wait(), resizer.stderr.readBytes()]);
      // A terminal that closed meanwhile went with its command: nothing left to resize.
      if (code !== 0 && !outcome.done)
        throw new SandboxProviderError({
          message: `Resizing the terminal ${ptyPath} failed (exit ${code}): ${new TextDecoder().decode(stderr).trim()}`,
          provider: 'modal',
        });
    } catch (error) {
      if (SandboxError.isInstance(error)) throw error;
      const mapped = mapError(error, 'resize');
      if (!(SandboxNotFoundError.isInstance(mapped) && outcome.done)) throw mapped;
    }
  })();
  await raceWithSignal(resizing, { signal: options.signal, operation: 'resize', provider: 'modal' });
}
