/**
 * An output stream that a pump feeds from a provider's event or log stream (Vercel's NDJSON logs,
 * the Cloudflare bridge's events), for providers that hand output over as messages instead of a
 * pipe. The pump awaits `push`: it resolves when the reader has room again, so a slow reader holds
 * the pump, and through it the provider's stream, back. A reader that cancels behaves as a closed
 * pipe's: what follows is dropped, and a command that keeps writing is told so once.
 */
import { fromCallbacks } from '../streams/index.js';

/** Bytes of output a stream holds for a reader that has not taken them before the pump waits. */
export const pumpedOutputBufferBytes = 1024 * 1024;

/** Bytes a command may write to an output whose reader cancelled before it is treated as a writer to a closed pipe. */
const cancelledWriterLimitBytes = 1024 * 1024;

export interface PumpedOutputOptions {
  /** Bytes held for the reader before `push` waits; 1 MiB by default. */
  readonly maxBufferedBytes?: number;
  /**
   * Called once when the command keeps writing (more than 1 MiB) after the reader cancelled: the
   * adapter does what a closed pipe would, SIGPIPE.
   */
  readonly onKeepsWriting?: () => void;
}

export class PumpedOutput {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #bridge: ReturnType<typeof fromCallbacks>;
  readonly #onKeepsWriting: (() => void) | undefined;
  #gate: { promise: Promise<void>; open: () => void } | undefined;
  #cancelled = false;
  #released = false;
  #discarded = 0;

  constructor(options: PumpedOutputOptions = {}) {
    this.#onKeepsWriting = options.onKeepsWriting;
    this.#bridge = fromCallbacks({
      maxBufferedBytes: options.maxBufferedBytes ?? pumpedOutputBufferBytes,
      pause: () => {
        let open!: () => void;
        const promise = new Promise<void>((resolve) => (open = resolve));
        this.#gate ??= { promise, open };
      },
      resume: () => this.#openGate(),
      cancel: () => {
        // A reader that gave up: the rest is dropped, as a closed pipe's reader would see nothing.
        this.#cancelled = true;
        this.#openGate();
      },
    });
    this.stream = this.#bridge.stream;
  }

  /** Hands a chunk to the reader; the promise, when there is one, resolves when the next may come. */
  push(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#cancelled) {
      const before = this.#discarded;
      this.#discarded += chunk.byteLength;
      if (before <= cancelledWriterLimitBytes && this.#discarded > cancelledWriterLimitBytes) this.#onKeepsWriting?.();
      return undefined;
    }
    this.#bridge.push(chunk);
    if (this.#released) return undefined;
    return this.#gate?.promise;
  }

  /**
   * Stops holding the pump back (the command was killed: what it wrote last is bounded, and its
   * exit comes after it on the same stream).
   */
  release(): void {
    this.#released = true;
    this.#openGate();
  }

  end(): void {
    this.#bridge.end();
    this.#openGate();
  }

  error(error: unknown): void {
    this.#bridge.error(error);
    this.#openGate();
  }

  #openGate(): void {
    const gate = this.#gate;
    this.#gate = undefined;
    gate?.open();
  }
}
