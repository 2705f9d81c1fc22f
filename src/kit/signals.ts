import { SandboxTimeoutError } from '../errors/index.js';

/**
 * Runs `operation`, rejecting with `signal.reason` as soon as the signal aborts (the operation's
 * own cleanup is the caller's `onAbort`), or with `SandboxTimeoutError` after `timeoutMs`.
 */
export async function raceWithSignal<T>(
  operation: Promise<T>,
  options: { signal?: AbortSignal; timeoutMs?: number; operation: string; provider?: string; onAbort?: () => void },
): Promise<T> {
  const { signal, timeoutMs } = options;
  if (!signal && timeoutMs === undefined) return operation;
  signal?.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const cleanup = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      cleanup();
      options.onAbort?.();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        cleanup();
        options.onAbort?.();
        reject(
          new SandboxTimeoutError({
            message: `${options.operation} timed out after ${timeoutMs} ms`,
            timeoutMs,
            operation: options.operation,
            provider: options.provider,
          }),
        );
      }, timeoutMs);
    }
    operation.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}
