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
export async function providerCall<T>(context: ProviderCallContext, operation: string, call: () => Promise<T>, options: ProviderCallOptions = {}): Promise<T> {
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
  const attempt = options.idempotent ? retryIdempotent(operation, once, { provider: context.provider, events: context.events, signal, retries: options.retries }) : once();
  return raceWithSignal(attempt, { signal, operation, provider: context.provider });
}
