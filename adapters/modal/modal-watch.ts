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
import { PushedFileWatch, SandboxNotFoundError, SandboxProviderError, type FileWatch, type SandboxError } from '../../src/kit/index.js';
import { isModalWatchGap, planModalWatchEvent } from './modal-options.js';

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
  let markStarted!: () => void;
  let failStart!: (error: unknown) => void;
  const started = new Promise<void>((resolve, reject) => {
    markStarted = resolve;
    failStart = reject;
  });
  let tool: ContainerProcess | undefined;
  let stopped = false;
  const watch = new PushedFileWatch({
    provider: 'modal',
    path: init.path,
    signal: init.signal,
    onAbort: (reason) => failStart(reason),
    // EOF on the tool's stdin ends it, as the SDK does.
    stop: () => {
      stopped = true;
      void tool?.closeStdin();
    },
  });
  // The SDK's filesystem class, over an exec that tells when the tool started (see the module doc).
  type FilesystemExec = (command: string[], params?: SandboxExecParams) => Promise<ContainerProcess>;
  const Filesystem = init.sdk.filesystem.constructor as new (exec: FilesystemExec) => SandboxFilesystem;
  const filesystem = new Filesystem(async (command, params) => {
    tool = await init.sdk.exec(command, params as SandboxExecParams & { mode?: 'text' });
    if (stopped) void tool.closeStdin();
    markStarted();
    return tool;
  });
  void pump(watch, init, filesystem.watch(init.path, { recursive: init.recursive })[Symbol.asyncIterator](), failStart);
  await started;
  return watch;
}

async function pump(
  watch: PushedFileWatch,
  init: ModalWatchInit,
  events: AsyncIterator<{ eventType: string; paths: string[] }>,
  failStart: (error: unknown) => void,
): Promise<void> {
  try {
    for (;;) {
      const next = await events.next();
      if (next.done || watch.ended) break;
      if (isModalWatchGap(next.value)) {
        watch.finish({
          error: new SandboxProviderError({
            message: `Modal's watcher of ${init.path} lost events (its event queue overflowed): the watch stopped rather than leave a gap`,
            provider: 'modal',
          }),
        });
        break;
      }
      const event = planModalWatchEvent(next.value);
      if (!event) continue;
      watch.deliver(event);
      // The watched path itself went away: nothing more can happen under it.
      if (event.type === 'remove' && event.path === init.path) break;
    }
    watch.finish({ done: true });
  } catch (error) {
    const mapped = init.mapError(error, 'watch', init.path);
    failStart(init.signal?.aborted ? init.signal.reason : mapped);
    // A watch that ends with its sandbox is done; one stopped by close or abort ended already.
    const sandboxGone = SandboxNotFoundError.isInstance(mapped) || !init.isRunning();
    watch.finish(sandboxGone ? { done: true } : { error: mapped });
  }
}
