/**
 * One way for an adapter to call its provider: check the sandbox is alive, run the call (retried
 * on transient failures only when idempotent), map what it throws to a sandport error, and
 * reject with `signal.reason` as soon as the caller aborts. Using it everywhere is what makes the
 * contract's retry promise true.
 */
import { SandboxError } from '../errors/index.js';
import type { SandboxEmitter } from '../spec/events.js';
import type { SandboxLifecycle } from './lifecycle.js';
import { retryIdempotent } from './retry.js';
import { raceWithSignal } from './signals.js';

export interface ProviderCallContext {
  provider: string;
  events?: SandboxEmitter | undefined;
  /** When given, the call first asserts the sandbox is running, and a failure after it ended becomes `SandboxNotFoundError`. */
  lifecycle?: SandboxLifecycle | undefined;
  /** Maps the SDK's error for this operation to a sandport error. */
  mapError: (error: unknown, operation: string) => SandboxError;
}

export interface ProviderCallOptions {
  /** Safe to repeat: retried on errors marked `retryable`. @default false */
  idempotent?: boolean;
  signal?: AbortSignal | undefined;
  /** How many retries for an idempotent call. @default 3 */
  retries?: number;
}

/** Runs one provider call. See the module doc. */
export async function providerCall<T>(
  context: ProviderCallContext,
  operation: string,
  call: () => Promise<T>,
  options: ProviderCallOptions = {},
): Promise<T> {
  const { signal } = options;
  signal?.throwIfAborted();
  context.lifecycle?.assertRunning();
  const once = async () => {
    try {
      return await call();
    } catch (error) {
      if (context.lifecycle && !context.lifecycle.isRunning()) throw context.lifecycle.notFound();
      throw SandboxError.isInstance(error) ? error : context.mapError(error, operation);
    }
  };
  // The first attempt runs directly: p-retry's machinery is paid only when a retry is needed.
  const attempt = once().catch((error: unknown) => {
    if (!options.idempotent || !SandboxError.isInstance(error) || !error.retryable || signal?.aborted) throw error;
    context.events?.emit('retry', { provider: context.provider, operation, attempt: 1, error });
    return backOff(200, signal).then(() =>
      retryIdempotent(operation, once, {
        provider: context.provider,
        events: context.events,
        signal,
        retries: Math.max(0, (options.retries ?? 3) - 1),
        firstAttempt: 2,
      }),
    );
  });
  return raceWithSignal(attempt, { signal, operation, provider: context.provider });
}

/** Waits about `milliseconds` (jittered), or rejects with `signal.reason` when the caller aborts. */
function backOff(milliseconds: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(done, milliseconds * (1 + Math.random()));
    function done() {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
