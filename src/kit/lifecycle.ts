/**
 * The state machine every sandbox shares: running (or paused, and running again) until it ends
 * once, for one reason. Adapters hold a `SandboxLifecycle` and delegate `poll`, `wait`, the
 * liveness checks, pause and resume, and the timers to it, so that every adapter fails running
 * execs, emits `sandbox-terminated` exactly once, stops its clocks while paused and answers
 * `wait()` the same way, whatever ended the sandbox.
 */
import { SandboxNotFoundError, SandboxPausedError } from '../errors/index.js';
import type { SandboxEmitter, SandboxWarning } from '../spec/events.js';
import type { SignalOptions } from '../spec/options.js';
import type { SandboxStatus } from '../spec/sandbox.js';
import { raceWithSignal } from './signals.js';
import { setLongTimeout, type LongTimer } from './timers.js';

/** The status of a sandbox that has ended. */
export type SandboxEnded = Extract<SandboxStatus, { state: 'terminated' }>;

/** What the lifecycle tells about its end: a running command is failed with `SandboxNotFoundError`. */
export interface LifecycleMember {
  sandboxEnded(status: SandboxEnded): void;
}

export interface SandboxLifecycleOptions {
  provider: string;
  sandboxId: string;
  events: SandboxEmitter;
  /** End the sandbox after this long with no command running and no activity (`touch`). */
  idleTimeoutMs?: number | undefined;
  /**
   * Releases what the sandbox holds (processes, containers, servers). Called once, by the first
   * `end`; the sandbox counts as ended, and `wait()` resolves, after it settles. A teardown that
   * throws still ends the sandbox: the error is reported to `end`'s caller.
   */
  teardown: (status: SandboxEnded) => Promise<void>;
}

export class SandboxLifecycle {
  private endedStatus: SandboxEnded | undefined;
  private ending: Promise<void> | undefined;
  private readonly members = new Set<LifecycleMember>();
  private readonly waiters = new Set<(status: SandboxEnded) => void>();
  private lifetimeTimer: LongTimer | undefined;
  private idleTimer: LongTimer | undefined;
  /** When the current lifetime ends, in epoch milliseconds (undefined: no lifetime armed, or paused). */
  deadline: number | undefined;
  /** While paused: what was left of the lifetime when the pause began (undefined: none armed). */
  private pausedLifetimeMs: number | undefined;
  private isPausedNow = false;
  /** Pauses and resumes run one at a time, in call order. */
  private transitions: Promise<unknown> = Promise.resolve();
  private readonly resumeWaiters = new Set<() => void>();

  constructor(private readonly options: SandboxLifecycleOptions) {
    this.touch();
  }

  /** The end status, once the sandbox has ended. */
  get ended(): SandboxEnded | undefined {
    return this.endedStatus;
  }

  /** Running, paused, or ended with its reason. */
  get status(): SandboxStatus {
    return this.endedStatus ?? (this.paused ? { state: 'paused' } : { state: 'running' });
  }

  /**
   * False from the moment the sandbox starts ending. A paused sandbox is still running in this
   * sense (it has not ended): `paused` tells the two apart.
   */
  isRunning(): boolean {
    return this.ending === undefined;
  }

  /** True from the moment `pause` begins until `resume` has thawed the sandbox; false once it ends. */
  get paused(): boolean {
    return this.isPausedNow && this.isRunning();
  }

  /**
   * What is left of the lifetime, in milliseconds: kept unchanged while paused. Undefined when no
   * lifetime is armed.
   */
  get remainingLifetimeMs(): number | undefined {
    if (this.isPausedNow) return this.pausedLifetimeMs;
    return this.deadline === undefined ? undefined : Math.max(0, this.deadline - Date.now());
  }

  /** How many commands are running now. */
  get running(): number {
    return this.members.size;
  }

  /** The error for any operation on a sandbox that is no longer running. */
  notFound(detail?: string): SandboxNotFoundError {
    const { sandboxId, provider } = this.options;
    const reason = this.endedStatus?.reason ?? 'terminating';
    return new SandboxNotFoundError({ message: `Sandbox ${sandboxId} is no longer running (${detail ?? reason})`, sandboxId, provider });
  }

  /** The error for any operation (but resume, terminate, poll, wait and tags) on a paused sandbox. */
  pausedError(): SandboxPausedError {
    const { sandboxId, provider } = this.options;
    return new SandboxPausedError({ message: `Sandbox ${sandboxId} is paused: resume() it first`, sandboxId, provider });
  }

  /**
   * Throws `SandboxNotFoundError` once the sandbox has started ending, and `SandboxPausedError`
   * while it is paused: the check before every operation that needs the sandbox to run.
   */
  assertRunning(): void {
    if (!this.isRunning()) throw this.notFound();
    if (this.isPausedNow) throw this.pausedError();
  }

  /** Throws `SandboxNotFoundError` once the sandbox has started ending; a paused sandbox passes (tags, lookups). */
  assertAlive(): void {
    if (!this.isRunning()) throw this.notFound();
  }

  /**
   * (Re)arms the lifetime: the sandbox ends with `lifetime-timeout` `timeoutMs` from now. While
   * paused, `timeoutMs` becomes what is left, and the clock starts at the resume.
   */
  armLifetime(timeoutMs: number): void {
    this.lifetimeTimer?.clear();
    if (this.isPausedNow) {
      this.pausedLifetimeMs = timeoutMs;
      return;
    }
    this.deadline = Date.now() + timeoutMs;
    this.lifetimeTimer = setLongTimeout(
      () => void this.end({ state: 'terminated', reason: 'lifetime-timeout' }).catch(() => undefined),
      timeoutMs,
    );
  }

  /** Activity: restarts the idle clock. Running commands hold it off until they end. Not while paused. */
  touch(): void {
    const idleMs = this.options.idleTimeoutMs;
    if (idleMs === undefined || !this.isRunning() || this.isPausedNow) return;
    this.idleTimer?.clear();
    this.idleTimer = setLongTimeout(() => {
      if (this.members.size > 0) return this.touch();
      void this.end({ state: 'terminated', reason: 'idle-timeout' }).catch(() => undefined);
    }, idleMs);
  }

  /** Registers a running command; the returned function unregisters it (and counts as activity). */
  track(member: LifecycleMember): () => void {
    this.members.add(member);
    this.touch();
    return () => {
      if (this.members.delete(member)) this.touch();
    };
  }

  /**
   * Pauses the sandbox: from the call on, `assertRunning` throws `SandboxPausedError` and `poll`
   * reports `paused`; the lifetime clock stops with its remaining time kept, the idle clock
   * stops; then `freeze` stops the sandbox's processes. When `freeze` throws, the sandbox runs on
   * as before (clocks re-armed) and the error is rethrown, or `SandboxNotFoundError` when the
   * sandbox ended meanwhile. Idempotent: pausing a paused sandbox resolves without calling
   * `freeze`. Pauses and resumes are serialized. Throws `SandboxNotFoundError` when the sandbox
   * has ended; rejects with `signal.reason` on abort (a freeze already under way completes).
   */
  pause(freeze: () => Promise<void>, options: SignalOptions = {}): Promise<void> {
    return this.transition('pause', options, async () => {
      if (this.isPausedNow) return;
      const remaining = this.remainingLifetimeMs;
      this.lifetimeTimer?.clear();
      this.idleTimer?.clear();
      this.deadline = undefined;
      this.pausedLifetimeMs = remaining;
      this.isPausedNow = true;
      try {
        await freeze();
      } catch (error) {
        this.isPausedNow = false;
        if (!this.isRunning()) throw this.notFound();
        this.runClocks();
        throw error;
      }
      if (!this.isRunning()) throw this.notFound();
    });
  }

  /**
   * Resumes a paused sandbox: `thaw` lets its processes run on, then the lifetime clock restarts
   * with the time that was left and the idle clock starts afresh. Until `thaw` resolves, the
   * sandbox counts as paused; when it throws, it stays paused and the error is rethrown (or
   * `SandboxNotFoundError` when the sandbox ended meanwhile). Idempotent: resuming a running
   * sandbox resolves without calling `thaw`. Throws `SandboxNotFoundError` when the sandbox has
   * ended; rejects with `signal.reason` on abort (a thaw already under way completes).
   */
  resume(thaw: () => Promise<void>, options: SignalOptions = {}): Promise<void> {
    return this.transition('resume', options, async () => {
      if (!this.isPausedNow) return;
      try {
        await thaw();
      } catch (error) {
        if (!this.isRunning()) throw this.notFound();
        throw error;
      }
      if (!this.isRunning()) throw this.notFound();
      this.adoptRunning();
    });
  }

  /**
   * Marks a sandbox found paused (a lookup in another process) as paused, without calling
   * anything: clocks stopped, `lifetimeMs` (when known) kept for the resume. No-op once paused.
   */
  adoptPaused(lifetimeMs?: number): void {
    if (this.isPausedNow || !this.isRunning()) return;
    this.lifetimeTimer?.clear();
    this.idleTimer?.clear();
    this.pausedLifetimeMs = lifetimeMs ?? this.remainingLifetimeMs;
    this.deadline = undefined;
    this.isPausedNow = true;
  }

  /**
   * Marks a sandbox that was paused here as running again because a lookup found it so (resumed
   * by another process): the clocks run again as after `resume`. No-op unless paused.
   */
  adoptRunning(): void {
    if (!this.isPausedNow || !this.isRunning()) return;
    this.isPausedNow = false;
    this.runClocks();
    for (const waiter of this.resumeWaiters) waiter();
    this.resumeWaiters.clear();
  }

  /**
   * Resolves at once while the sandbox runs; while paused, when it resumes or starts ending.
   * For work that must reach the running sandbox, like the kill of a command whose `timeoutMs`
   * ran out during a pause.
   */
  whenRunning(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise<void>((resolve) => this.resumeWaiters.add(resolve));
  }

  /** Runs pause and resume bodies one at a time; each checks liveness when its turn comes. */
  private transition(operation: 'pause' | 'resume', options: SignalOptions, body: () => Promise<void>): Promise<void> {
    try {
      options.signal?.throwIfAborted();
      this.assertAlive();
    } catch (error) {
      return Promise.reject(error);
    }
    const run = this.transitions.then(() => {
      this.assertAlive();
      return body();
    });
    this.transitions = run.catch(() => undefined);
    return raceWithSignal(run, { signal: options.signal, operation, provider: this.options.provider });
  }

  /** Starts the lifetime (with what was left) and the idle clock after a pause. */
  private runClocks(): void {
    const remaining = this.pausedLifetimeMs;
    this.pausedLifetimeMs = undefined;
    if (remaining !== undefined) this.armLifetime(remaining);
    this.touch();
  }

  /**
   * Ends the sandbox once: stops the timers, fails running commands, runs the teardown, then
   * records the status, emits `sandbox-terminated` and resolves every `wait()`. Later calls
   * return the first call's promise. Idempotent.
   */
  end(status: SandboxEnded): Promise<void> {
    this.ending ??= (async () => {
      this.lifetimeTimer?.clear();
      this.idleTimer?.clear();
      // Work waiting for a resume (a deferred kill) learns of the end instead.
      for (const waiter of this.resumeWaiters) waiter();
      this.resumeWaiters.clear();
      for (const member of this.members) member.sandboxEnded(status);
      this.members.clear();
      let failure: unknown;
      try {
        await this.options.teardown(status);
      } catch (error) {
        failure = error;
      }
      this.endedStatus = status;
      const { provider, sandboxId, events } = this.options;
      try {
        events.emit('sandbox-terminated', { provider, sandboxId, reason: status.reason });
      } catch {
        // A throwing listener does not change the sandbox's fate.
      }
      for (const waiter of this.waiters) waiter(status);
      this.waiters.clear();
      if (failure !== undefined) throw failure;
    })();
    return this.ending;
  }

  /** Resolves with the end status when the sandbox ends; rejects with `signal.reason` on abort. */
  wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    if (this.endedStatus) return Promise.resolve(this.endedStatus);
    let waiter!: (status: SandboxEnded) => void;
    const ended = new Promise<SandboxEnded>((resolve) => {
      waiter = resolve;
      this.waiters.add(resolve);
    });
    return raceWithSignal(ended, {
      signal: options.signal,
      operation: 'wait',
      provider: this.options.provider,
      onAbort: () => this.waiters.delete(waiter),
    });
  }

  /**
   * `wait`, for a sandbox its provider can end on its own side (a timeout kept there, a delete
   * from another process), which nothing in this process would hear of otherwise: while the wait
   * runs, `observe` asks the provider every `intervalMs`, and it ends this lifecycle when it finds
   * the sandbox gone. A failed ask is ignored (the next round asks again). The asking stops when
   * the sandbox has ended or the wait is aborted; `askNow()` false skips a round. With
   * `askAtOnce` the first ask is right away, otherwise after one interval (for providers where a
   * sandbox just made may not be visible yet).
   */
  waitObserving(
    options: SignalOptions,
    observe: (signal: AbortSignal | undefined) => Promise<unknown>,
    asking: { intervalMs: number; askAtOnce?: boolean; askNow?: () => boolean },
  ): Promise<SandboxEnded> {
    const ended = this.wait(options);
    const { signal } = options;
    const pause = () => new Promise((resolve) => setTimeout(resolve, asking.intervalMs).unref?.());
    void (async () => {
      if (!asking.askAtOnce) await pause();
      while (this.isRunning() && !signal?.aborted) {
        if (asking.askNow?.() ?? true) await observe(signal).catch(() => undefined);
        await pause();
      }
    })().catch(() => undefined);
    return ended;
  }

  /** The current status. Never throws for an ended sandbox. */
  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    return this.status;
  }
}

/**
 * Emits what a successful create announces, in the same order on every adapter: each warning,
 * then `sandbox-created`.
 */
export function announceCreated(
  events: SandboxEmitter,
  created: { provider: string; sandboxId: string; name: string | undefined; startedAt: number; warnings: readonly SandboxWarning[] },
): void {
  const { provider, sandboxId, name, startedAt, warnings } = created;
  for (const warning of warnings) events.emit('warning', { provider, sandboxId, warning });
  events.emit('sandbox-created', { provider, sandboxId, name, durationMs: Date.now() - startedAt });
}
