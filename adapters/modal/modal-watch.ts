/**
 * `files.watch` over the SDK's own `filesystem.watch` (Modal's file tool watching inside the
 * sandbox), with the contract's readiness, bounded queue, close and abort.
 *
 * Readiness: the SDK's watch is a generator that starts the tool on its first `next()` and
 * reports nothing until the first event. The adapter runs it on a filesystem object of its own
 * whose exec it observes, so `watch()` resolves once Modal acknowledged the tool's start
 * (`TaskExecStart`). Modal says nothing about when the tool's watch is then in place: on the real
 * service a change made in the first moments after `watch()` resolves may be missed. (The
 * emulator answers the start only once its watch is established.)
 */
import type { ContainerProcess, SandboxExecParams, SandboxFilesystem, Sandbox as ModalSdkSandbox } from 'modal';
import { SandboxNotFoundError, SandboxProviderError, type FileEvent, type FileWatch, type SandboxError } from '../../src/kit/index.js';
import { isModalWatchGap, planModalWatchEvent } from './modal-options.js';

/** Events a watch holds for a consumer that has not taken them; beyond it the watch fails loudly. */
export const maxQueuedWatchEvents = 10_000;

export interface ModalWatchInit {
  sdk: ModalSdkSandbox;
  /** Absolute, validated. */
  path: string;
  recursive: boolean;
  signal: AbortSignal | undefined;
  mapError: (error: unknown, operation: string, path?: string) => SandboxError;
  /** Whether the sandbox still runs (an error after its end ends the watch instead). */
  isRunning: () => boolean;
}

/** Starts the watch; resolves once Modal started its watcher. Rejects with the mapped error or `signal.reason`. */
export async function startModalWatch(init: ModalWatchInit): Promise<FileWatch> {
  init.signal?.throwIfAborted();
  const watch = new ModalFileWatch(init);
  await watch.started;
  return watch;
}

class ModalFileWatch implements FileWatch {
  readonly started: Promise<void>;
  readonly #init: ModalWatchInit;
  readonly #queue: FileEvent[] = [];
  #outcome: { done: true } | { error: unknown } | undefined;
  #waiting: { resolve: (result: IteratorResult<FileEvent>) => void; reject: (error: unknown) => void } | undefined;
  #tool: ContainerProcess | undefined;
  #stopped = false;
  readonly #failStart: (error: unknown) => void;
  readonly #onAbort = () => {
    this.#failStart(this.#init.signal!.reason);
    this.#finish({ error: this.#init.signal!.reason });
  };

  constructor(init: ModalWatchInit) {
    this.#init = init;
    let markStarted!: () => void;
    let failStart!: (error: unknown) => void;
    this.started = new Promise<void>((resolve, reject) => {
      markStarted = resolve;
      failStart = reject;
    });
    this.#failStart = failStart;
    // The SDK's filesystem class, over an exec that tells when the tool started (see the module doc).
    type FilesystemExec = (command: string[], params?: SandboxExecParams) => Promise<ContainerProcess>;
    const Filesystem = init.sdk.filesystem.constructor as new (exec: FilesystemExec) => SandboxFilesystem;
    const filesystem = new Filesystem(async (command, params) => {
      const tool = await init.sdk.exec(command, params as SandboxExecParams & { mode?: 'text' });
      this.#tool = tool;
      if (this.#stopped) void tool.closeStdin();
      markStarted();
      return tool;
    });
    init.signal?.addEventListener('abort', this.#onAbort, { once: true });
    void this.#pump(filesystem.watch(init.path, { recursive: init.recursive })[Symbol.asyncIterator]());
  }

  async #pump(events: AsyncIterator<{ eventType: string; paths: string[] }>): Promise<void> {
    try {
      for (;;) {
        const next = await events.next();
        if (next.done || this.#outcome) break;
        if (isModalWatchGap(next.value)) {
          this.#finish({
            error: new SandboxProviderError({
              message: `Modal's watcher of ${this.#init.path} lost events (its event queue overflowed): the watch stopped rather than leave a gap`,
              provider: 'modal',
            }),
          });
          break;
        }
        const event = planModalWatchEvent(next.value);
        if (!event) continue;
        this.#deliver(event);
        // The watched path itself went away: nothing more can happen under it.
        if (event.type === 'remove' && event.path === this.#init.path) break;
      }
      this.#finish({ done: true });
    } catch (error) {
      const mapped = this.#init.mapError(error, 'watch', this.#init.path);
      this.#failStart(this.#init.signal?.aborted ? this.#init.signal.reason : mapped);
      // A watch that ends with its sandbox is done; one stopped by close or abort ended already.
      const sandboxGone = SandboxNotFoundError.isInstance(mapped) || !this.#init.isRunning();
      this.#finish(sandboxGone ? { done: true } : { error: mapped });
    }
  }

  #deliver(event: FileEvent): void {
    if (this.#waiting) {
      const { resolve } = this.#waiting;
      this.#waiting = undefined;
      resolve({ done: false, value: event });
      return;
    }
    if (this.#queue.length >= maxQueuedWatchEvents) {
      this.#finish({
        error: new SandboxProviderError({
          message: `The watch of ${this.#init.path} fell behind: more than ${maxQueuedWatchEvents} events were not taken, so it stopped rather than lose some`,
          provider: 'modal',
        }),
      });
      return;
    }
    this.#queue.push(event);
  }

  /** Ends the watch once (later outcomes are ignored) and stops the tool: EOF on its stdin ends it, as the SDK does. */
  #finish(outcome: { done: true } | { error: unknown }): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    this.#init.signal?.removeEventListener('abort', this.#onAbort);
    this.#stopped = true;
    void this.#tool?.closeStdin();
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
        new SandboxProviderError({ message: 'One watch event at a time: await the pending next()', provider: 'modal' }),
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
    this.#finish({ done: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
