/**
 * The sandbox's own stdio on Modal: the SDK's `sb.stdout`, `sb.stderr` and `sb.stdin`, which
 * Modal serves from its side (the output from the start, or "the most recent portion" of it; a
 * late reader, another process and `fromId` read it too).
 *
 * The contract's bound holds on top of that: from the first read of the property the adapter
 * takes Modal's stream as it comes and keeps the latest 1 MiB until the caller reads (the kit's
 * `entrypointStdio`, with its `warning` event for what it dropped); once read it is pull-based.
 * The SDK decodes this output as UTF-8 text; it is encoded back to bytes here, so bytes that
 * are not valid UTF-8 arrive as U+FFFD.
 */
import type { Sandbox as ModalSdkSandbox } from 'modal';
import { entrypointStdio, type EntrypointStdio, type SandboxEmitter, type SandboxError } from '../../src/kit/index.js';

export interface ModalEntrypointInit {
  sdk: ModalSdkSandbox;
  sandboxId: string;
  events: SandboxEmitter;
  /**
   * Whether the sandbox was created with a `command`. `false`: closed outputs and a discarding
   * stdin. `undefined` (found by id or name, or wrapped): unknown, so Modal's streams are used;
   * without a command they stay open, empty, until the sandbox ends.
   */
  hasCommand: boolean | undefined;
  mapError: (error: unknown, operation: string) => SandboxError;
  /** Resolves true once the sandbox has ended (asks Modal when the adapter does not know yet). */
  hasEnded: () => Promise<boolean>;
}

/** The three streams, made once per sandbox (on the first read of any of the properties). */
export function modalEntrypointStdio(init: ModalEntrypointInit): EntrypointStdio {
  const options = { provider: 'modal', sandboxId: init.sandboxId, events: init.events };
  if (init.hasCommand === false) return entrypointStdio(undefined, options);
  return entrypointStdio(
    { stdout: outputBytes(() => init.sdk.stdout, init), stderr: outputBytes(() => init.sdk.stderr, init), stdin: entrypointInput(init) },
    options,
  );
}

/**
 * The SDK's text stream as bytes, asked for at the first pull (the SDK refuses once the sandbox
 * was let go of). A failure once the sandbox has ended is the end of the stream.
 */
function outputBytes(source: () => ReadableStream<string | Uint8Array>, init: ModalEntrypointInit): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let reader: ReadableStreamDefaultReader<string | Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          reader ??= source().getReader();
          for (;;) {
            const next = await reader.read();
            if (next.done) return controller.close();
            const bytes = typeof next.value === 'string' ? encoder.encode(next.value) : next.value;
            if (bytes.byteLength > 0) return controller.enqueue(bytes);
          }
        } catch (error) {
          if (await init.hasEnded().catch(() => true)) return controller.close();
          controller.error(init.mapError(error, 'stdout'));
        }
      },
      cancel: (reason) => reader?.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** `sb.stdin` with the contract's end: once the entrypoint has ended, writes and close are discarded. */
function entrypointInput(init: ModalEntrypointInit): WritableStream<Uint8Array> {
  let writer: WritableStreamDefaultWriter<string | Uint8Array> | undefined;
  let ended = false;
  const guarded = async (operation: (target: WritableStreamDefaultWriter<string | Uint8Array>) => Promise<void>) => {
    if (ended) return;
    try {
      writer ??= init.sdk.stdin.getWriter();
      await operation(writer);
    } catch (error) {
      if (await init.hasEnded().catch(() => false)) {
        ended = true;
        return;
      }
      throw init.mapError(error, 'stdin');
    }
  };
  return new WritableStream<Uint8Array>({
    write: (chunk) => guarded((target) => target.write(chunk)),
    close: () => guarded((target) => target.close()),
    abort: () => writer?.abort().catch(() => undefined),
  });
}
