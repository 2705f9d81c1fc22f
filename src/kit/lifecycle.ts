/**
 * The state machine every sandbox shares: running until it ends once, for one reason. Adapters
 * hold a `SandboxLifecycle` and delegate `poll`, `wait`, the liveness checks and the timers to
 * it, so that every adapter fails running execs, emits `sandbox-terminated` exactly once and
 * answers `wait()` the same way, whatever ended the sandbox.
 */
import { SandboxNotFoundError } from '../errors/index.js';
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
  /** When the current lifetime ends, in epoch milliseconds (undefined: no lifetime armed). */
  deadline: number | undefined;

  constructor(private readonly options: SandboxLifecycleOptions) {
    this.touch();
  }

  /** The end status, once the sandbox has ended. */
  get ended(): SandboxEnded | undefined {
    return this.endedStatus;
  }

  /** Running, or ended with its reason. */
  get status(): SandboxStatus {
    return this.endedStatus ?? { state: 'running' };
  }

  /** False from the moment the sandbox starts ending. */
  isRunning(): boolean {
    return this.ending === undefined;
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

  /** Throws `SandboxNotFoundError` once the sandbox has started ending. */
  assertRunning(): void {
    if (!this.isRunning()) throw this.notFound();
  }

  /** (Re)arms the lifetime: the sandbox ends with `lifetime-timeout` `timeoutMs` from now. */
  armLifetime(timeoutMs: number): void {
    this.lifetimeTimer?.clear();
    this.deadline = Date.now() + timeoutMs;
    this.lifetimeTimer = setLongTimeout(
      () => void this.end({ state: 'terminated', reason: 'lifetime-timeout' }).catch(() => undefined),
      timeoutMs,
    );
  }

  /** Activity: restarts the idle clock. Running commands hold it off until they end. */
  touch(): void {
    const idleMs = this.options.idleTimeoutMs;
    if (idleMs === undefined || !this.isRunning()) return;
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
   * Ends the sandbox once: stops the timers, fails running commands, runs the teardown, then
   * records the status, emits `sandbox-terminated` and resolves every `wait()`. Later calls
   * return the first call's promise. Idempotent.
   */
  end(status: SandboxEnded): Promise<void> {
    this.ending ??= (async () => {
      this.lifetimeTimer?.clear();
      this.idleTimer?.clear();
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
