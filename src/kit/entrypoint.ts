/**
 * The sandbox's own stdio (`Sandbox.stdout`, `stderr`, `stdin`): the create `command`'s streams,
 * bounded while nobody reads them, pull-based once somebody does. Shared by every adapter that
 * runs the entrypoint as a process it holds the pipes of (local, Docker); adapters whose
 * provider keeps the entrypoint's output itself (Modal) hand the provider's streams through.
 */
import type { SandboxEmitter } from '../spec/events.js';
import type { SandboxProcess } from '../spec/sandbox.js';
import type { SandboxLifecycle } from './lifecycle.js';

/** How much of each entrypoint stream a sandbox keeps until it is first read: 1 MiB. */
export const entrypointBufferBytes = 1024 * 1024;

/** What the entrypoint's streams need from the adapter. */
export interface EntrypointOutputOptions {
  /** Bytes kept while unread; older output is dropped. @default entrypointBufferBytes */
  limitBytes?: number;
  /**
   * Called once, at the first read, when output was dropped before it: the adapter turns it into
   * a `warning` event (nothing is lost silently).
   */
  onDropped?: (droppedBytes: number) => void;
}

/**
 * Wraps one entrypoint output stream. Until the result is first read, `source` is drained into
 * a buffer of the latest `limitBytes` (so a server nobody reads never stalls on a full pipe);
 * from the first read on, chunks are handed over as they are asked for (backpressure reaches
 * the entrypoint). Cancelling the result cancels `source`.
 */
export function entrypointOutput(source: ReadableStream<Uint8Array>, options: EntrypointOutputOptions = {}): ReadableStream<Uint8Array> {
  const limit = options.limitBytes ?? entrypointBufferBytes;
  const reader = source.getReader();
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  let dropped = 0;
  let reading = false;
  let ended = false;
  let failure: { error: unknown } | undefined;

  // The read-ahead loop: runs only until the first pull, then hands the reader to `pull`. The
  // read it has in flight then may wait for output that comes much later (a quiet server), so
  // `pull` serves what is kept first and waits for the loop only once that ran out.
  const drained = (async () => {
    while (!reading) {
      let result: Awaited<ReturnType<typeof reader.read>>;
      try {
        result = await reader.read();
      } catch (error) {
        failure = { error };
        return;
      }
      if (result.done) {
        ended = true;
        return;
      }
      kept.push(result.value);
      keptBytes += result.value.byteLength;
      // Once reading started nothing more is dropped: the landing chunk is the reader's next.
      while (!reading && keptBytes > limit) {
        const excess = keptBytes - limit;
        const head = kept[0]!;
        if (head.byteLength <= excess) {
          kept.shift();
          keptBytes -= head.byteLength;
          dropped += head.byteLength;
        } else {
          kept[0] = head.subarray(excess);
          keptBytes -= excess;
          dropped += excess;
        }
      }
    }
  })();

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!reading) {
          reading = true;
          if (dropped > 0) options.onDropped?.(dropped);
        }
        if (kept.length === 0) await drained;
        const next = kept.shift();
        if (next) {
          keptBytes -= next.byteLength;
          controller.enqueue(next);
          return;
        }
        if (failure) return controller.error(failure.error);
        if (ended) return controller.close();
        const result = await reader.read().catch((error: unknown) => ({ error }));
        if ('error' in result) controller.error(result.error);
        else if (result.done) controller.close();
        else controller.enqueue(result.value);
      },
      async cancel(reason) {
        reading = true;
        kept.length = 0;
        await reader.cancel(reason).catch(() => undefined);
      },
    },
    // No read-ahead of its own: the buffer above is the only one, so its bound is the real one.
    { highWaterMark: 0 },
  );
}

/** An entrypoint stream of a sandbox that has no `command`: closed from the start. */
export function closedReadable(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
}

/** The entrypoint stdin of a sandbox that has no `command` (or whose entrypoint exited): writes are discarded. */
export function discardingWritable(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>();
}

/** The entrypoint's three streams, as `Sandbox.stdout`, `stderr` and `stdin` expose them. */
export interface EntrypointStdio {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly stdin: WritableStream<Uint8Array>;
}

/** Where `entrypointStdio` reports dropped output: the provider's events, as a `warning`. */
export interface EntrypointStdioOptions {
  provider: string;
  sandboxId: string;
  events: SandboxEmitter;
  /** @default entrypointBufferBytes */
  limitBytes?: number;
}

/**
 * The sandbox's stdio over its entrypoint process: each output through `entrypointOutput`, with
 * a `warning` event (`type: 'other'`, the message naming the stream and `<n> bytes`) when
 * output was dropped before the first read; `stdin` is the process's own. `undefined` (a
 * sandbox without `command`) gives closed outputs and a discarding stdin.
 */
export function entrypointStdio(
  process: Pick<SandboxProcess, 'stdout' | 'stderr' | 'stdin'> | undefined,
  options: EntrypointStdioOptions,
): EntrypointStdio {
  if (!process) return { stdout: closedReadable(), stderr: closedReadable(), stdin: discardingWritable() };
  const limitBytes = options.limitBytes ?? entrypointBufferBytes;
  const output = (source: ReadableStream<Uint8Array>, stream: 'stdout' | 'stderr') =>
    entrypointOutput(source, { limitBytes, onDropped: (droppedBytes) => reportDropped(options, stream, droppedBytes, limitBytes) });
  return { stdout: output(process.stdout, 'stdout'), stderr: output(process.stderr, 'stderr'), stdin: process.stdin };
}

function reportDropped(options: EntrypointStdioOptions, stream: 'stdout' | 'stderr', droppedBytes: number, limitBytes: number): void {
  const { provider, sandboxId, events } = options;
  const message =
    `${droppedBytes} bytes of the entrypoint's ${stream} were dropped in sandbox ${sandboxId} before it was first read ` +
    `(unread output keeps the latest ${limitBytes} bytes)`;
  try {
    events.emit('warning', { provider, sandboxId, warning: { type: 'other', message } });
  } catch {
    // A throwing listener must not break the stream that reported.
  }
}

/**
 * How long a sandbox's own end may lag its entrypoint's exit before the exec's status ends it: 10 s.
 * Only for providers whose sandbox ends with the entrypoint (see `startExecEntrypoint`'s `sandboxEnd`).
 */
export const entrypointEndGraceMs = 10_000;

/**
 * Starts a create's `command` as an exec of the sandbox, for providers without an entrypoint of
 * their own, and ends the sandbox (`entrypoint-exited`, with its exit code) when it exits.
 *
 * The create's signal covers the start only. Once the command is running, aborting that signal
 * must not kill it: a create given `AbortSignal.timeout(60_000)` would otherwise lose its command
 * a minute later. So `start` gets a signal of its own, which follows the create's only until the
 * start is done.
 *
 * `sandboxEnd` is for providers whose sandbox itself ends with the entrypoint: a keeper (the
 * container's or machine's main process) told the command's status exits with it. There the
 * exec's own status is not to be trusted: the keeper's exit kills what is left in the sandbox,
 * the notifier that was just exiting with the status too, and its exec then reports 137 (SIGKILL)
 * for a command that exited 0, sometimes before the provider reports the keeper's exit. So the
 * sandbox's end, which `sandboxEnd` observes (it settles once the lifecycle ended), decides; the
 * exec's status ends the sandbox only if that end has not come within `entrypointEndGraceMs`
 * (the keeper never learnt of the exit).
 */
export async function startExecEntrypoint(
  start: (signal: AbortSignal) => Promise<SandboxProcess>,
  options: {
    signal: AbortSignal | undefined;
    lifecycle: Pick<SandboxLifecycle, 'end'>;
    sandboxEnd?: (signal: AbortSignal) => Promise<unknown>;
    graceMs?: number;
  },
): Promise<SandboxProcess> {
  const { signal, lifecycle, sandboxEnd } = options;
  const process = await withStartSignal(signal, start);
  void process.wait().then(
    async ({ exitCode }) => {
      if (sandboxEnd) await observedWithin(sandboxEnd, options.graceMs ?? entrypointEndGraceMs);
      await lifecycle.end({ state: 'terminated', reason: 'entrypoint-exited', exitCode }).catch(() => undefined);
    },
    () => undefined,
  );
  return process;
}

/** Settles when `observe` does or after `ms`, whichever is first; the loser is stopped by its signal. */
async function observedWithin(observe: (signal: AbortSignal) => Promise<unknown>, ms: number): Promise<void> {
  const stop = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      observe(stop.signal).catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/**
 * Runs `start` with a signal that follows `signal` until `start` settles and never after: for a
 * create's command, whose start the create's signal may cancel but whose life it must not.
 */
export async function withStartSignal<T>(signal: AbortSignal | undefined, start: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const starting = new AbortController();
  const forward = () => starting.abort(signal?.reason);
  signal?.addEventListener('abort', forward, { once: true });
  if (signal?.aborted) forward();
  try {
    return await start(starting.signal);
  } finally {
    signal?.removeEventListener('abort', forward);
  }
}

/** Reads and drops an entrypoint's output, for a provider that offers no entrypoint stdio: a full pipe must not stall it. */
export function drainEntrypointOutput(process: Pick<SandboxProcess, 'stdout' | 'stderr'>): void {
  void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
}
