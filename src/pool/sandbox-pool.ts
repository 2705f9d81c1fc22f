/**
 * A warm pool: sandboxes created (and prepared) ahead of time so that `acquire` hands one over at
 * once. Works on any `SandboxProvider`: it uses only `create`, `wait`, `terminate` and the
 * provider's `sandbox-terminated` event.
 *
 * Invariants, each kept by one place in this file:
 * - a sandbox is in `ready` at most once, and leaves it synchronously before any await, so two
 *   `acquire` calls can never get the same one (`takeReady`);
 * - every sandbox the pool holds is in `held`; `retire` and `handOver` are the only ways out, and
 *   each removes it from both sets and stops its timer and end watch;
 * - everything `close` must wait for (creations, terminations) is in `tasks`.
 */
import { setMaxListeners } from 'node:events';
import { raceWithSignal } from '../kit/signals.js';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { setLongTimeout, type LongTimer } from '../kit/timers.js';
import { parseOptions } from '../kit/validate.js';
import { signalOptionsSchema, type SignalOptions } from '../spec/options.js';
import type { Sandbox, SandboxProvider } from '../spec/sandbox.js';
import { SandboxPoolClosedError } from './pool-errors.js';
import { SandboxPoolEmitter, type SandboxPoolEvents, type SandboxPoolOperation } from './pool-events.js';
import {
  backoffDelayMs,
  parsePoolOptions,
  planReplenish,
  planRetirement,
  retirementDeadline,
  type ParsedSandboxPoolOptions,
  type SandboxPoolOptions,
  type SandboxPoolRetireReason,
} from './pool-options.js';

/** What the pool holds right now (`pool.stats()`). */
export interface SandboxPoolStats {
  /** Sandboxes ready to hand over. */
  readonly ready: number;
  /** Creations under way: background replenishment plus cold `acquire` calls. */
  readonly creating: number;
  /** Ready sandboxes under a health check for an `acquire`. */
  readonly checking: number;
  /** Background creations that failed in a row (0 after a success). */
  readonly consecutiveFailures: number;
  /** `close()` was called. */
  readonly closed: boolean;
}

/**
 * A warm pool of sandboxes of one provider. Create it with `createSandboxPool`; `await using pool
 * = createSandboxPool(…)` closes it at the end of the block (`[Symbol.asyncDispose]` is `close()`).
 */
export interface SandboxPool extends AsyncDisposable {
  /** The provider the pool creates sandboxes with. */
  readonly provider: SandboxProvider;
  /** How many ready sandboxes the pool keeps (`options.size`). */
  readonly size: number;
  /** The pool's events: `created`, `prepared`, `ready`, `acquired`, `retired`, `error`, `closed`. */
  readonly events: SandboxPoolEmitter;
  /**
   * Hands over a sandbox, which is then the caller's (terminate it when done; the pool never
   * touches it again and never hands it out again). A ready one comes at once (after
   * `healthCheck`, when there is one); with none ready, one is created (and prepared) for this
   * call. Either way the pool replenishes in the background.
   *
   * Aborting `signal` rejects with `signal.reason` and leaks nothing: a sandbox being created for
   * the call is terminated, one under a health check goes back to the pool if the check passes.
   * @throws SandboxPoolClosedError after `close()`, or when `close()` begins while the call waits.
   * @throws what `provider.create` or `prepare` threw, for a cold acquire (nothing is retried then).
   * @throws SandboxInvalidArgumentError (argument `signal`) for a signal that is not an `AbortSignal`.
   */
  acquire(options?: SignalOptions): Promise<Sandbox>;
  /**
   * Resolves once `size` sandboxes are ready at the same time (at once if they are). Background
   * failures do not reject it (they are `error` events and retried): bound the wait with `signal`.
   * @throws SandboxPoolClosedError when the pool is or gets closed first; `signal.reason` on abort.
   */
  waitUntilWarm(options?: SignalOptions): Promise<void>;
  /** Counts of what the pool holds now. Synchronous, no I/O. */
  stats(): SandboxPoolStats;
  /**
   * Stops replenishing, aborts every `prepare` and health check under way, waits for creations
   * under way, and terminates every sandbox the pool holds or was creating (not those already
   * handed over); resolves when all of them are terminated, so `provider.list` shows none.
   * `acquire` calls still waiting reject with `SandboxPoolClosedError` at once. Termination failures are
   * `error` events, not rejections. Idempotent: later calls return the same completion. Aborting
   * `signal` rejects this call with `signal.reason`; the closing goes on.
   */
  close(options?: SignalOptions): Promise<void>;
}

/** One sandbox the pool holds: ready, or under a health check. */
interface Held {
  readonly sandbox: Sandbox;
  readonly createdAt: number;
  readonly readyAt: number;
  /** The retirement timer (`maxAgeMs` / `maxIdleMs`), when there is a limit. */
  timer: LongTimer | undefined;
  /** Stops the background `wait()` that notices the sandbox ending. */
  readonly watch: AbortController;
  /** The sandbox ended while the pool held it. */
  ended: boolean;
}

/** Which step a creation failed in, around the step's own error. */
class StepFailure {
  constructor(
    readonly operation: SandboxPoolOperation,
    readonly sandboxId: string | undefined,
    readonly error: unknown,
  ) {}
}

const unwrap = (error: unknown): unknown => (error instanceof StepFailure ? error.error : error);

/**
 * Creates a warm pool and starts filling it in the background (the call itself does no I/O).
 *
 * @example
 * const pool = createSandboxPool(provider, { size: 2, maxIdleMs: 300_000, prepare: (s) => s.run(['git', 'clone', repo, '/work']) });
 * const sandbox = await pool.acquire({ signal });
 * @throws SandboxInvalidArgumentError naming the field (`size`, `concurrency`, `createOptions.image`, `maxAgeMs`, …).
 */
export function createSandboxPool(provider: SandboxProvider, options: SandboxPoolOptions): SandboxPool {
  const parsed = parsePoolOptions(options);
  const pool = new WarmPool(provider, parsed);
  pool.start();
  return pool;
}

class WarmPool implements SandboxPool {
  readonly events = new SandboxPoolEmitter();
  readonly #ready: Held[] = [];
  readonly #held = new Map<string, Held>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #warmWaiters = new Set<{ resolve: () => void; reject: (error: unknown) => void }>();
  readonly #closing = new AbortController();
  #backgroundCreating = 0;
  #coldCreating = 0;
  #failures = 0;
  #backoff: LongTimer | undefined;
  #closed: Promise<void> | undefined;

  constructor(
    readonly provider: SandboxProvider,
    readonly options: ParsedSandboxPoolOptions,
  ) {}

  get size(): number {
    return this.options.size;
  }

  get #isClosed(): boolean {
    return this.#closed !== undefined;
  }

  start(): void {
    // Every creation, prepare and health check under way listens to it: a busy pool has many.
    setMaxListeners(0, this.#closing.signal);
    this.provider.events.on('sandbox-terminated', this.#onTerminated);
    this.#fill();
  }

  stats(): SandboxPoolStats {
    return {
      ready: this.#ready.length,
      creating: this.#backgroundCreating + this.#coldCreating,
      checking: this.#held.size - this.#ready.length,
      consecutiveFailures: this.#failures,
      closed: this.#isClosed,
    };
  }

  async acquire(options: SignalOptions = {}): Promise<Sandbox> {
    const { signal } = parseOptions(signalOptionsSchema, options, { what: 'acquire options' });
    if (this.#isClosed) throw this.#closedError('acquire');
    signal?.throwIfAborted();
    const started = performance.now();
    for (let held = this.#takeReady(); held; held = this.#takeReady()) {
      if (this.options.healthCheck && !(await this.#check(held, signal))) continue;
      this.#handOver(held);
      this.#emit('acquired', { sandboxId: held.sandbox.id, warm: true, durationMs: performance.now() - started });
      return held.sandbox;
    }
    const sandbox = await this.#createForAcquire(signal);
    this.#emit('acquired', { sandboxId: sandbox.id, warm: false, durationMs: performance.now() - started });
    return sandbox;
  }

  async waitUntilWarm(options: SignalOptions = {}): Promise<void> {
    const { signal } = parseOptions(signalOptionsSchema, options, { what: 'waitUntilWarm options' });
    if (this.#isClosed) throw this.#closedError('waitUntilWarm');
    signal?.throwIfAborted();
    if (this.#ready.length >= this.size) return;
    // Not Promise.withResolvers: Node 20 lacks it.
    let waiter: { resolve: () => void; reject: (error: unknown) => void } | undefined;
    const waiting = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
      this.#warmWaiters.add(waiter);
    });
    return raceWithSignal(waiting, { signal, operation: 'waitUntilWarm', onAbort: () => this.#warmWaiters.delete(waiter!) });
  }

  async close(options: SignalOptions = {}): Promise<void> {
    const { signal } = parseOptions(signalOptionsSchema, options, { what: 'close options' });
    this.#closed ??= this.#close();
    return raceWithSignal(this.#closed, { signal, operation: 'close' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- taking and handing over ----------------------------------------------------------------

  /**
   * The oldest ready sandbox that is still within its limits, out of `ready` (synchronously: the
   * never-twice rule), or `undefined`. Those past a limit are retired on the way.
   */
  #takeReady(): Held | undefined {
    for (let held = this.#ready.shift(); held; held = this.#ready.shift()) {
      const expired = planRetirement(held, Date.now(), this.options);
      if (expired) this.#retire(held, expired);
      else if (held.ended) this.#retire(held, 'ended');
      else return held;
    }
    return undefined;
  }

  /** Lets go of a sandbox for the caller: it leaves every set, and the pool refills. */
  #handOver(held: Held): void {
    this.#forget(held);
    // After the caller has the sandbox: a provider's create starts with synchronous work
    // (validation, spawning a process) that would otherwise be part of this acquire's time.
    setImmediate(() => this.#fill());
  }

  /**
   * Runs the health check on a sandbox taken out of `ready`. True: hand it over. False: it was
   * retired, try the next. Rejects on abort (the acquire's signal or close); the sandbox then goes
   * back to `ready` if the check, once settled, passes.
   */
  async #check(held: Held, signal: AbortSignal | undefined): Promise<boolean> {
    const combined = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    const outcome = Promise.resolve()
      .then(() => this.options.healthCheck!(held.sandbox, { signal: combined }))
      .then(
        (answer) => ({ healthy: answer !== false, error: undefined as unknown }),
        (error: unknown) => ({ healthy: false, error }),
      );
    let result: { healthy: boolean; error: unknown };
    try {
      result = await raceWithSignal(outcome, { signal: combined, operation: 'healthCheck' });
    } catch (reason) {
      void outcome.then((late) => this.#afterAbortedCheck(held, late.healthy));
      throw reason;
    }
    if (this.#held.get(held.sandbox.id) !== held) return false; // closed or ended under the check
    if (held.ended || !result.healthy) {
      this.#retire(held, held.ended ? 'ended' : 'unhealthy', result.error);
      return false;
    }
    return true;
  }

  /** A check whose acquire gave up: a healthy sandbox goes back to the front of `ready`. */
  #afterAbortedCheck(held: Held, healthy: boolean): void {
    if (this.#held.get(held.sandbox.id) !== held) return; // retired meanwhile (closed, ended)
    const reason = healthy ? (held.ended ? 'ended' : planRetirement(held, Date.now(), this.options)) : 'unhealthy';
    if (reason) {
      this.#retire(held, reason);
      return;
    }
    this.#ready.unshift(held);
    this.#notifyWarm();
  }

  /** A cold acquire: create (and prepare) a sandbox for this call, or reject leaving nothing behind. */
  async #createForAcquire(signal: AbortSignal | undefined): Promise<Sandbox> {
    const combined = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    this.#coldCreating++;
    this.#fill(); // nothing was ready: start replenishing now, not after this creation
    const creation = this.#make(combined, true, signal);
    this.#track(creation.finally(() => this.#coldCreating--));
    try {
      return await raceWithSignal(creation, { signal: combined, operation: 'acquire' });
    } catch (error) {
      // Aborted after the sandbox came to exist but before this call saw it: it is nobody's.
      void creation.then(
        (sandbox) => this.#terminate(sandbox),
        () => undefined,
      );
      throw combined.aborted ? combined.reason : unwrap(error);
    }
  }

  // --- creating and replenishing --------------------------------------------------------------

  /**
   * `provider.create`, then `prepare`. Rejects with a `StepFailure` (or the signal's reason) and
   * terminates what it created when a later step fails or the signal aborted meanwhile.
   *
   * `signal` ends the wait; `createSignal` (the caller's own, or none) is all `create` is given.
   * The pool's close never aborts a `create`: a provider may answer an aborted create at once and
   * end the sandbox it made in its own background, where `close` could not wait for it. Instead
   * the close waits for the create and terminates what it made, so nothing is left running when
   * `close` resolves.
   */
  async #make(signal: AbortSignal, forAcquire: boolean, createSignal: AbortSignal | undefined): Promise<Sandbox> {
    const createdAt = Date.now();
    // Through a promise: a third-party provider's create may throw before it returns one.
    const creating = Promise.resolve().then(() =>
      this.provider.create(createSignal ? { ...this.options.createOptions, signal: createSignal } : this.options.createOptions),
    );
    let sandbox: Sandbox;
    try {
      sandbox = await raceWithSignal(creating, { signal, operation: 'create' });
    } catch (error) {
      // A create that resolves after its abort was seen here still made a sandbox: end it.
      this.#track(
        creating.then(
          (late) => this.#terminate(late),
          () => undefined,
        ),
      );
      throw signal.aborted ? signal.reason : new StepFailure('create', undefined, error);
    }
    this.#emit('created', { sandboxId: sandbox.id, durationMs: Date.now() - createdAt, forAcquire });
    createdAtOf.set(sandbox, createdAt);
    if (signal.aborted) {
      this.#terminate(sandbox);
      throw signal.reason;
    }
    if (!this.options.prepare) return sandbox;
    const preparing = Date.now();
    try {
      await raceWithSignal(
        Promise.resolve().then(() => this.options.prepare!(sandbox, { signal })),
        { signal, operation: 'prepare' },
      );
    } catch (error) {
      this.#terminate(sandbox);
      if (signal.aborted) throw signal.reason;
      this.#emit('retired', { sandboxId: sandbox.id, reason: 'prepare-failed', error });
      throw new StepFailure('prepare', sandbox.id, error);
    }
    this.#emit('prepared', { sandboxId: sandbox.id, durationMs: Date.now() - preparing, forAcquire });
    return sandbox;
  }

  /** Starts as many background creations as `planReplenish` allows. */
  #fill(): void {
    const count = planReplenish({
      ready: this.#ready.length,
      creating: this.#backgroundCreating,
      size: this.size,
      concurrency: this.options.concurrency,
      paused: this.#isClosed || this.#backoff !== undefined,
    });
    for (let index = 0; index < count; index++) {
      this.#backgroundCreating++;
      this.#track(this.#replenishOne());
    }
  }

  async #replenishOne(): Promise<void> {
    try {
      const sandbox = await this.#make(this.#closing.signal, false, undefined);
      // The close may have begun between the last step and here: then it is not admitted.
      if (this.#isClosed) return this.#terminate(sandbox);
      this.#refuseIfBornOld(sandbox);
      this.#failures = 0;
      this.#admit(sandbox);
    } catch (error) {
      if (this.#isClosed) return; // the close aborted it: not a failure
      this.#failures++;
      const retryInMs = backoffDelayMs(this.#failures, this.options);
      const step = error instanceof StepFailure ? error : new StepFailure('create', undefined, error);
      this.#emit('error', { operation: step.operation, sandboxId: step.sandboxId, error: step.error, attempt: this.#failures, retryInMs });
      this.#pauseFor(retryInMs);
    } finally {
      this.#backgroundCreating--;
      this.#fill();
    }
  }

  /**
   * A sandbox past `maxAgeMs` as soon as it is ready (creating and preparing took longer) would be
   * retired at once and replaced at once, for ever: count it as a failure instead, so the pool
   * backs off and says why.
   */
  #refuseIfBornOld(sandbox: Sandbox): void {
    const createdAt = createdAtOf.get(sandbox) ?? Date.now();
    const { maxAgeMs } = this.options;
    if (maxAgeMs === undefined || Date.now() - createdAt < maxAgeMs) return;
    this.#terminate(sandbox);
    this.#emit('retired', { sandboxId: sandbox.id, reason: 'max-age' });
    const error = new SandboxInvalidArgumentError({
      message: `maxAgeMs (${maxAgeMs} ms) is shorter than creating${this.options.prepare ? ' and preparing' : ''} a sandbox took (${Date.now() - createdAt} ms)`,
      argument: 'maxAgeMs',
    });
    throw new StepFailure(this.options.prepare ? 'prepare' : 'create', sandbox.id, error);
  }

  /**
   * No background creation starts for `delayMs`. A referenced timer: an app waiting on
   * `waitUntilWarm` during a backoff must not see Node exit under it; `close` clears it.
   */
  #pauseFor(delayMs: number): void {
    this.#backoff?.clear();
    this.#backoff = setLongTimeout(
      () => {
        this.#backoff = undefined;
        this.#fill();
      },
      delayMs,
      { ref: true },
    );
  }

  /** A new sandbox joins `ready`, with its retirement timer and its end watch. */
  #admit(sandbox: Sandbox): void {
    const held: Held = {
      sandbox,
      createdAt: createdAtOf.get(sandbox) ?? Date.now(),
      readyAt: Date.now(),
      timer: undefined,
      watch: new AbortController(),
      ended: false,
    };
    this.#held.set(sandbox.id, held);
    this.#ready.push(held);
    const deadline = retirementDeadline(held, this.options);
    if (deadline !== undefined) held.timer = setLongTimeout(() => this.#expire(held), deadline - Date.now());
    // Notices an end that no event reported (a cloud sandbox's timeout is seen by polling).
    held.sandbox.wait({ signal: held.watch.signal }).then(
      () => this.#ended(held),
      () => undefined,
    );
    this.#emit('ready', { sandboxId: sandbox.id, ready: this.#ready.length });
    this.#notifyWarm();
  }

  #expire(held: Held): void {
    // Under a health check it is the check's to decide; `takeReady` and the check see the limit.
    if (!this.#ready.includes(held)) return;
    this.#retire(held, planRetirement(held, Date.now(), this.options) ?? 'max-age');
  }

  readonly #onTerminated = (event: { sandboxId: string }): void => {
    const held = this.#held.get(event.sandboxId);
    if (held) this.#ended(held);
  };

  #ended(held: Held): void {
    if (this.#held.get(held.sandbox.id) !== held) return;
    held.ended = true;
    if (this.#ready.includes(held)) this.#retire(held, 'ended');
  }

  #notifyWarm(): void {
    if (this.#ready.length < this.size) return;
    for (const waiter of this.#warmWaiters) waiter.resolve();
    this.#warmWaiters.clear();
  }

  // --- letting go -----------------------------------------------------------------------------

  /** Removes a held sandbox from every set and stops its timer and end watch. */
  #forget(held: Held): void {
    const index = this.#ready.indexOf(held);
    if (index >= 0) this.#ready.splice(index, 1);
    this.#held.delete(held.sandbox.id);
    held.timer?.clear();
    held.watch.abort();
  }

  #retire(held: Held, reason: SandboxPoolRetireReason, error?: unknown): void {
    if (this.#held.get(held.sandbox.id) !== held) return;
    this.#forget(held);
    this.#emit('retired', error === undefined ? { sandboxId: held.sandbox.id, reason } : { sandboxId: held.sandbox.id, reason, error });
    // An ended sandbox needs no terminate call; terminate is idempotent, so it is harmless anyway.
    this.#terminate(held.sandbox);
    this.#fill();
  }

  #terminate(sandbox: Sandbox): void {
    this.#track(
      sandbox.terminate().catch((error: unknown) => {
        this.#emit('error', { operation: 'terminate', sandboxId: sandbox.id, error, attempt: undefined, retryInMs: undefined });
      }),
    );
  }

  #track(task: Promise<unknown>): void {
    const settled = task.then(
      () => undefined,
      () => undefined,
    );
    this.#tasks.add(settled);
    void settled.then(() => this.#tasks.delete(settled));
  }

  async #close(): Promise<void> {
    this.#backoff?.clear();
    this.#backoff = undefined;
    this.#closing.abort(this.#closedError('acquire'));
    this.provider.events.off('sandbox-terminated', this.#onTerminated);
    for (const held of [...this.#held.values()]) this.#retire(held, 'closed');
    for (const waiter of this.#warmWaiters) waiter.reject(this.#closedError('waitUntilWarm'));
    this.#warmWaiters.clear();
    // Creations aborted by the close may still end in a terminate: wait until nothing is left.
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
    this.#emit('closed', {});
  }

  #closedError(operation: string): SandboxPoolClosedError {
    return new SandboxPoolClosedError({ message: `${operation}: the sandbox pool of provider ${this.provider.id} is closed` });
  }

  #emit<Name extends keyof EventPayloads>(name: Name, payload: EventPayloads[Name]): void {
    try {
      (this.events.emit as (name: string, payload: unknown) => boolean)(name, { provider: this.provider.id, ...payload });
    } catch {
      // A throwing listener must not break the pool (the contract of provider.events too).
    }
  }
}

/** When each sandbox's `create` began, from `#make` to `#admit` without widening `Sandbox`. */
const createdAtOf = new WeakMap<Sandbox, number>();

/** Each event's payload without the `provider` field, which `#emit` adds. */
type EventPayloads = {
  [Name in keyof SandboxPoolEvents]: DistributiveOmit<SandboxPoolEvents[Name][0], 'provider'>;
};
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
