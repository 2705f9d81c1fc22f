/**
 * Host memory as the bounded-memory tests read it.
 *
 * A stream read or written in slices leaves garbage behind (the slices already passed on), and
 * every measure counts it until the collector runs, so each sample comes after a full collection.
 * The collector is reached without `--expose-gc` through V8's flag API, so the suite measures the
 * same way under any runner.
 *
 * Two measures, because neither alone says what a stream holds:
 * - `held` is what JavaScript objects and Buffers still take after the collection (V8's heap in
 *   use plus the memory outside it that V8 accounts for, Buffers included). It is what an adapter
 *   buffers, and the bound the tests assert. Two collections run before it: V8 frees the memory
 *   behind dead Buffers on a background sweeper, and the second collection waits for the first
 *   one's sweep.
 * - `resident` is the process's RSS. It also counts memory the C allocator keeps after it was
 *   freed: glibc keeps freed blocks of a few MiB in its arenas for reuse, so a client that moves
 *   4 MiB request bodies and holds 10 MiB can show 80 MiB more RSS in a fresh process. The tests
 *   give it a looser bound, which still catches buffering that V8 does not see.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;

function collector(): () => void {
  if (collect) return collect;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return (collect = exposed);
  try {
    setFlagsFromString('--expose-gc');
    const fromContext = runInNewContext('gc') as unknown;
    collect = typeof fromContext === 'function' ? (fromContext as () => void) : () => undefined;
  } catch {
    collect = () => undefined;
  }
  return collect;
}

/** One sample of this process's memory, in bytes, after full collections when they can be triggered. */
export interface HostMemory {
  /** V8's heap in use plus the external memory it accounts for (Buffers and ArrayBuffers included). */
  readonly held: number;
  /** The resident set size. */
  readonly resident: number;
}

export function hostMemory(): HostMemory {
  collector()();
  collector()();
  const usage = process.memoryUsage();
  return { held: usage.heapUsed + usage.external, resident: usage.rss };
}

/** Host memory growth allowed while a large stream is read or written slowly, whatever the scale. */
export const boundedMemoryLimitMiB = 64;

/** How many times the held bound the resident growth may reach: allocator retention, not buffering. */
export const residentSlackFactor = 3;

/** The growth of `hostMemory()` over a baseline, as the peak of the samples taken. */
export class MemoryGrowth {
  readonly #baseline = hostMemory();
  #peakHeld = this.#baseline.held;
  #peakResident = this.#baseline.resident;

  /** Takes a sample (two full collections: call it every few MiB, not per chunk). */
  sample(): void {
    const now = hostMemory();
    this.#peakHeld = Math.max(this.#peakHeld, now.held);
    this.#peakResident = Math.max(this.#peakResident, now.resident);
  }

  get heldMiB(): number {
    return (this.#peakHeld - this.#baseline.held) / 1024 / 1024;
  }

  get residentMiB(): number {
    return (this.#peakResident - this.#baseline.resident) / 1024 / 1024;
  }

  /** Says what grew, for an assertion's message. */
  describe(what: string): string {
    return `while ${what}, held memory grew ${this.heldMiB.toFixed(1)} MiB and RSS ${this.residentMiB.toFixed(1)} MiB`;
  }
}

/**
 * Fails unless the memory a stream held stayed under `boundedMemoryLimitMiB` and RSS under the
 * looser `boundedMemoryLimitMiB * residentSlackFactor`; the message gives both growths.
 */
export function expectBoundedGrowth(growth: MemoryGrowth, what: string): void {
  const residentLimitMiB = boundedMemoryLimitMiB * residentSlackFactor;
  if (growth.heldMiB >= boundedMemoryLimitMiB || growth.residentMiB >= residentLimitMiB) {
    throw new Error(`${growth.describe(what)}: the bounds are ${boundedMemoryLimitMiB} MiB held and ${residentLimitMiB} MiB RSS`);
  }
}
