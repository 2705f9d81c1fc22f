import { constants as osConstants } from 'node:os';
import { SandboxTimeoutError } from '../errors/index.js';

const signalNames = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name]));

/**
 * The signal a shell-convention exit status (128 + n) stands for, for providers that report
 * only a number. An ordinary `exit 130` reads as SIGINT: the number cannot tell them apart.
 */
export function signalFromExitCode(exitCode: number): NodeJS.Signals | undefined {
  return exitCode > 128 && exitCode <= 128 + 64 ? (signalNames.get(exitCode - 128) as NodeJS.Signals | undefined) : undefined;
}

/**
 * Watches an exec's own `timeoutMs` and the caller's `signal`. When either fires, `stop` gets the
 * reason the command ended for (`SandboxTimeoutError` or `signal.reason`), once, and the adapter
 * kills the process tree. Call the returned function when the command has exited.
 */
export function watchExecLimits(options: {
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  provider: string;
  stop: (reason: unknown) => void;
}): () => void {
  const { timeoutMs, signal, provider, stop } = options;
  const onAbort = () => stop(signal!.reason);
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => stop(execTimeoutError(timeoutMs, provider)), timeoutMs);
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/** The `SandboxTimeoutError` of an exec whose `timeoutMs` ran out (also for adapters that time out natively). */
export function execTimeoutError(timeoutMs: number, provider: string): SandboxTimeoutError {
  return new SandboxTimeoutError({ message: `Command timed out after ${timeoutMs} ms`, timeoutMs, operation: 'exec', provider });
}
