import pRetry from 'p-retry';
import { SandboxError } from '../errors/index.js';
import type { SandboxEmitter } from '../spec/events.js';

/**
 * Retries an idempotent provider call on transient failures (errors marked `retryable`: rate
 * limits, 5xx, connection resets). Never use it for `create`, `exec` or writes that are not
 * idempotent. Aborting `signal` stops retrying and rejects with `signal.reason`.
 */
export async function retryIdempotent<T>(
  operation: string,
  call: () => Promise<T>,
  options: { provider: string; events?: SandboxEmitter; signal?: AbortSignal; retries?: number; firstAttempt?: number },
): Promise<T> {
  const offset = (options.firstAttempt ?? 1) - 1;
  return pRetry(call, {
    retries: options.retries ?? 3,
    minTimeout: 200,
    maxTimeout: 3_000,
    randomize: true,
    signal: options.signal,
    shouldRetry: ({ error }) => SandboxError.isInstance(error) && error.retryable,
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft > 0) options.events?.emit('retry', { provider: options.provider, operation, attempt: attemptNumber + offset, error });
    },
  });
}
