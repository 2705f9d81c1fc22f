/**
 * A `FileWatch` fed by pushes: for adapters whose provider hands watch events to a callback or
 * an iterator of its own (Modal's `filesystem.watch`, E2B's `watchDir`). It keeps what the
 * contract promises: events in order, a bounded queue that fails loudly instead of dropping,
 * `close()`/disposal/`break` ending it once and stopping the provider's watcher, and an abort
 * rejecting the iteration with `signal.reason`. (`watchViaExec` in watch.ts pulls from a
 * watcher process instead, with backpressure of its own.)
 */
import { SandboxProviderError } from '../errors/index.js';
import type { FileEvent, FileWatch } from '../spec/sandbox.js';

/** Events a watch holds for a consumer that has not taken them; beyond it the watch fails loudly. */
export const maxQueuedWatchEvents = 10_000;

/** How a pushed watch ended: done, or an error its iteration rejects with. */
export type PushedWatchOutcome = { readonly done: true } | { readonly error: unknown };

export interface PushedFileWatchOptions {
  /** For errors: `SandboxError.provider`. */
  provider: string;
  /** The watched path, for messages. */
  path: string;
  /** Aborting ends the watch: the pending and later `next()` reject with `signal.reason`. */
  signal?: AbortSignal | undefined;
  /** Stops the provider's watcher; called once, when the watch ends for any reason. */
  stop: () => void;
  /** Called with `signal.reason` when the signal ends the watch (before `stop`). */
  onAbort?: (reason: unknown) => void;
  /** @default maxQueuedWatchEvents */
  maxQueued?: number;
}

export class PushedFileWatch implements FileWatch {
  readonly #options: PushedFileWatchOptions;
  readonly #queue: FileEvent[] = [];
  #outcome: PushedWatchOutcome | undefined;
  #waiting: { resolve: (result: IteratorResult<FileEvent>) => void; reject: (error: unknown) => void } | undefined;
  readonly #onAbort = () => {
    const reason = this.#options.signal!.reason;
    this.#options.onAbort?.(reason);
    this.finish({ error: reason });
  };

  constructor(options: PushedFileWatchOptions) {
    this.#options = options;
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Whether the watch has ended (pushes are then ignored). */
  get ended(): boolean {
    return this.#outcome !== undefined;
  }

  /** One event, in order. Past the queue's bound the watch ends with a `SandboxProviderError`. */
  deliver(event: FileEvent): void {
    if (this.#outcome) return;
    if (this.#waiting) {
      const { resolve } = this.#waiting;
      this.#waiting = undefined;
      resolve({ done: false, value: event });
      return;
    }
    const limit = this.#options.maxQueued ?? maxQueuedWatchEvents;
    if (this.#queue.length >= limit) {
      this.finish({
        error: new SandboxProviderError({
          message: `The watch of ${this.#options.path} fell behind: more than ${limit} events were not taken, so it stopped rather than lose some`,
          provider: this.#options.provider,
        }),
      });
      return;
    }
    this.#queue.push(event);
  }

  /** Ends the watch once (later outcomes are ignored) and stops the provider's watcher. Events queued before stay readable. */
  finish(outcome: PushedWatchOutcome): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#options.stop();
    if (this.#waiting) {
      const { resolve, reject } = this.#waiting;
      this.#waiting = undefined;
      if ('error' in outcome) reject(outcome.error);
      else resolve({ done: true, value: undefined });
    }
  }

  #next(): Promise<IteratorResult<FileEvent>> {
    const event = this.#queue.shift();
    if (event) return Promise.resolve({ done: false, value: event });
    if (this.#outcome)
      return 'error' in this.#outcome ? Promise.reject(this.#outcome.error) : Promise.resolve({ done: true, value: undefined });
    if (this.#waiting)
      return Promise.reject(
        new SandboxProviderError({ message: 'One watch event at a time: await the pending next()', provider: this.#options.provider }),
      );
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<FileEvent> {
    return {
      next: () => this.#next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  async close(): Promise<void> {
    // Events not taken yet are dropped: a closed watch reports nothing more.
    this.#queue.length = 0;
    this.finish({ done: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
