/**
 * What every adapter's `SandboxProcess` shares: the outcome of one command. It watches the exec's
 * `timeoutMs` and `signal` (killing the tree when either fires), records why the command failed
 * (timeout, abort, the sandbox ending), emits `exec-start` and `exec-end` exactly once each, and
 * gives `wait()` its semantics: the exit status, or the recorded failure.
 */
import type { SandboxEmitter } from '../spec/events.js';
import type { Command } from '../spec/options.js';
import type { ExitStatus } from '../spec/sandbox.js';
import { watchExecLimits } from './exec-limits.js';
import type { LifecycleMember, SandboxEnded, SandboxLifecycle } from './lifecycle.js';
import { checkSignal, type KillSignal } from './validate.js';

export { execTimeoutError } from './exec-limits.js';

let execCounter = 0;

/** A short id, unique in this process, for an exec (also its tree-kill marker). */
export function newExecId(): string {
  return `x${(++execCounter).toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

export interface ProcessOutcomeOptions {
  provider: string;
  sandboxId: string;
  events: SandboxEmitter;
  command: Command;
  execId?: string;
  /** The sandbox's lifecycle: the command counts as running for the idle timer, and fails when the sandbox ends. */
  lifecycle?: SandboxLifecycle;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Signals the command's whole process tree. Called at most once per `kill()` and never after the exit. */
  kill: (signal: KillSignal) => Promise<void>;
}

export class ProcessOutcome implements LifecycleMember {
  readonly execId: string;
  private failure: unknown;
  private status: ExitStatus | undefined;
  private announced = false;
  private abandoned = false;
  private readonly startedAt = Date.now();
  private readonly stopWatching: () => void;
  private readonly untrack: () => void;
  private settle!: (status: ExitStatus) => void;
  private readonly exit = new Promise<ExitStatus>((resolve) => (this.settle = resolve));
  private killing: Promise<void> | undefined;
  private readonly failureListeners = new Set<(reason: unknown) => void>();

  constructor(private readonly options: ProcessOutcomeOptions) {
    this.execId = options.execId ?? newExecId();
    this.untrack = options.lifecycle?.track(this) ?? (() => undefined);
    this.stopWatching = watchExecLimits({
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      provider: options.provider,
      stop: (reason) => {
        this.fail(reason);
        this.killWhenRunning();
      },
    });
  }

  /** Whether the command has exited (or was abandoned). */
  get done(): boolean {
    return this.status !== undefined;
  }

  /** The command runs: emits `exec-start`. Call once, when `exec()` is about to return. */
  started(): void {
    if (this.announced || this.done) return;
    this.announced = true;
    const { provider, sandboxId, events, command } = this.options;
    emitSafely(() => events.emit('exec-start', { provider, sandboxId, execId: this.execId, command }));
  }

  /** Records why the command failed; the first reason wins and `wait()` rejects with it. */
  fail(reason: unknown): void {
    if (this.failure !== undefined || reason === undefined) return;
    this.failure = reason;
    for (const listener of this.failureListeners) listener(reason);
    this.failureListeners.clear();
  }

  /** The recorded failure, if any. */
  get failed(): unknown {
    return this.failure;
  }

  /** @see LifecycleMember */
  sandboxEnded(status: SandboxEnded): void {
    this.fail(this.options.lifecycle?.notFound(`it ended (${status.reason}) while the command was running`));
  }

  /** The command exited: settles `wait()` and emits `exec-end` (when `exec-start` was). Once. */
  exited(status: ExitStatus): void {
    if (this.done) return;
    this.status = status;
    this.stopWatching();
    this.untrack();
    this.settle(status);
    if (!this.announced) return;
    const { provider, sandboxId, events } = this.options;
    emitSafely(() =>
      events.emit('exec-end', {
        provider,
        sandboxId,
        execId: this.execId,
        exitCode: status.exitCode,
        signal: status.signal,
        durationMs: Date.now() - this.startedAt,
      }),
    );
  }

  /** The command never started (a typed start error is on its way to the caller): stop watching, no events. */
  abandon(): void {
    if (this.done) return;
    this.abandoned = true;
    const status: ExitStatus = { exitCode: -1, signal: undefined };
    this.status = status;
    this.stopWatching();
    this.untrack();
    this.settle(status);
  }

  /**
   * Waits while the command starts, and gives up when the exec's signal aborts or its timeout
   * fires meanwhile: the tree is killed and the call rejects with that reason. Early aborts are
   * never lost.
   */
  async startup<T>(starting: Promise<T>): Promise<T> {
    let listener: ((reason: unknown) => void) | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      if (this.failure !== undefined) return reject(this.failure);
      listener = reject;
      this.failureListeners.add(reject);
    });
    gaveUp.catch(() => undefined);
    try {
      const value = await Promise.race([starting, gaveUp]);
      if (this.failure !== undefined) throw this.failure;
      return value;
    } catch (error) {
      void starting.catch(() => undefined);
      this.killWhenRunning();
      this.abandon();
      throw this.failure ?? error;
    } finally {
      if (listener) this.failureListeners.delete(listener);
    }
  }

  /** The exit status; rejects with the recorded failure (timeout, abort, sandbox ended). */
  async wait(): Promise<ExitStatus> {
    const status = await this.exit;
    if (this.failure !== undefined) throw this.failure;
    return status;
  }

  /**
   * Signals the command's tree. Validates the signal first (`SandboxInvalidArgumentError`);
   * a no-op once the command has exited. Concurrent SIGKILLs share one attempt. Idempotent.
   * Throws `SandboxPausedError` while the sandbox is paused (a paused sandbox runs nothing, a
   * kill included): resume it first.
   */
  async kill(signal: unknown = 'SIGKILL'): Promise<void> {
    const checked = checkSignal(signal, this.options.provider);
    if (this.done) return;
    const { lifecycle } = this.options;
    if (lifecycle?.paused) throw lifecycle.pausedError();
    return this.signalTree(checked);
  }

  /**
   * Our own kill (the exec's `timeoutMs` ran out, its signal aborted, its start was given up):
   * during a pause it waits for the resume, as the paused sandbox cannot run it, so the command
   * dies then. The timeout is wall-clock time, pauses included.
   */
  private killWhenRunning(): void {
    const { lifecycle } = this.options;
    if (!lifecycle?.paused) {
      void this.signalTree('SIGKILL').catch(() => undefined);
      return;
    }
    // An abandoned start still gets its kill (what started of it must go); an exit does not.
    void lifecycle
      .whenRunning()
      .then(() => (this.done && !this.abandoned ? undefined : this.options.kill('SIGKILL')))
      .catch(() => undefined);
  }

  private async signalTree(checked: KillSignal): Promise<void> {
    if (this.done) return;
    if (checked === 'SIGKILL' && this.killing) return this.killing;
    const attempt = this.options.kill(checked);
    if (checked === 'SIGKILL') {
      this.killing = attempt;
      void attempt.catch(() => (this.killing = undefined));
    }
    await attempt;
  }
}

function emitSafely(emit: () => void): void {
  try {
    emit();
  } catch {
    // A throwing listener does not change the command's fate.
  }
}
