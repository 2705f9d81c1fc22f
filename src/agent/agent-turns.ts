import { SandboxTimeoutError } from '../errors/index.js';
import { AsyncQueue } from './async-queue.js';

/** What the caller holds of one turn: its messages as they arrive, its result, its save. */
export interface TurnHandle<TMessage, TResult> extends AsyncIterable<TMessage> {
  readonly result: Promise<TResult>;
  readonly saved: Promise<void>;
}

/** A turn the queue started: what the session needs to run it on the CLI and to route its messages. */
export interface ActiveTurn<TPrompt, TMessage> {
  /** 1-based, counted over the session's life (a resumed session continues its count). */
  readonly index: number;
  readonly prompt: TPrompt;
  /** Set when the turn must fail even if the CLI ends it normally (timeout, abort). */
  readonly failure: unknown;
  /** Hands a message to the caller's iteration. */
  push(message: TMessage): void;
  /** Ends `saved`; saving is the session's business, not the queue's. */
  savedResolve(): void;
  savedReject(error: unknown): void;
}

export interface TurnQueueOptions<TPrompt, TMessage> {
  /** Turn limit when `enqueue` is given none, in milliseconds. */
  defaultTimeoutMs: number;
  /** After asking the CLI to stop a turn the caller gave up on, how long before `kill`, in milliseconds. */
  interruptGraceMs: number;
  /** Turns already run (a resumed session's count). @default 0 */
  turns?: number;
  /** Provider id carried by the timeout error. */
  provider: string;
  /** Hands the turn to the CLI. Called synchronously, at most once per turn, one turn at a time. */
  start(turn: ActiveTurn<TPrompt, TMessage>): void;
  /** Asks the CLI to stop the running turn (the caller gave up on it). Must not throw. */
  interrupt(): void;
  /** The CLI did not stop within `interruptGraceMs`: end it the hard way. */
  kill(): void;
}

type Outcome<TResult> = { result: TResult } | { error: unknown };

class Turn<TPrompt, TMessage, TResult> implements ActiveTurn<TPrompt, TMessage> {
  index = 0;
  failure: unknown;
  timer: NodeJS.Timeout | undefined;
  escalation: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** The CLI is done with the turn (result, or the process died), or it never reached the CLI. */
  settled = false;
  /** The caller was told (result, or an early rejection). */
  notified = false;
  readonly messages = new AsyncQueue<TMessage>();
  readonly handle: TurnHandle<TMessage, TResult>;
  resolve!: (result: TResult) => void;
  reject!: (error: unknown) => void;
  savedResolve!: () => void;
  savedReject!: (error: unknown) => void;

  constructor(
    readonly prompt: TPrompt,
    readonly signal: AbortSignal | undefined,
    readonly timeoutMs: number | undefined,
  ) {
    const result = new Promise<TResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const saved = new Promise<void>((resolve, reject) => {
      this.savedResolve = resolve;
      this.savedReject = reject;
    });
    // Callers may read only the messages, or only the result: neither must surface as unhandled.
    result.catch(() => undefined);
    saved.catch(() => undefined);
    const messages = this.messages;
    this.handle = { result, saved, [Symbol.asyncIterator]: () => messages[Symbol.asyncIterator]() };
  }

  push(message: TMessage): void {
    this.messages.push(message);
  }
}

/**
 * The turns of one CLI process: one runs at a time, later ones wait in order. A turn ends when
 * the session `complete`s it, or early for its caller when its signal aborts or its limit
 * passes; then the CLI is interrupted, and killed after a grace, and the turn keeps the slot
 * until the CLI is done with it. A turn whose signal aborts while it waits is rejected at once
 * and never reaches the CLI. Knows nothing of the CLI itself: `start`, `interrupt` and `kill`
 * are the session's.
 */
export class TurnQueue<TPrompt, TMessage, TResult> {
  private readonly waiting: Array<Turn<TPrompt, TMessage, TResult>> = [];
  private running: Turn<TPrompt, TMessage, TResult> | undefined;
  private started: number;
  private halted: { error: unknown } | undefined;

  constructor(private readonly options: TurnQueueOptions<TPrompt, TMessage>) {
    this.started = options.turns ?? 0;
  }

  /** The running turn, if any. */
  get active(): ActiveTurn<TPrompt, TMessage> | undefined {
    return this.running;
  }

  /** Turns started so far, including the ones counted in `options.turns`. */
  get count(): number {
    return this.started;
  }

  /**
   * Queues a turn, starting it at once when none runs. With `refusal`, the turn is rejected with
   * it instead (the session is closed or dead, the prompt is bad); an aborted `signal` rejects
   * with its reason. Never throws.
   */
  enqueue(prompt: TPrompt, options: { signal?: AbortSignal; timeoutMs?: number; refusal?: unknown } = {}): TurnHandle<TMessage, TResult> {
    const { signal } = options;
    const turn = new Turn<TPrompt, TMessage, TResult>(prompt, signal, options.timeoutMs);
    const refusal = options.refusal ?? this.halted?.error ?? (signal?.aborted ? signal.reason : undefined);
    if (refusal !== undefined || signal?.aborted) {
      this.settle(turn, { error: refusal });
      return turn.handle;
    }
    if (signal) {
      turn.onAbort = () => {
        turn.failure ??= signal.reason;
        this.stop(turn);
      };
      signal.addEventListener('abort', turn.onAbort, { once: true });
    }
    this.waiting.push(turn);
    this.next();
    return turn.handle;
  }

  /**
   * The CLI ended `turn` with `result`: resolves it, or rejects it with its `failure` when the
   * caller already gave up on it, and starts the next. Idempotent.
   */
  complete(turn: ActiveTurn<TPrompt, TMessage>, result: TResult): void {
    const own = turn as Turn<TPrompt, TMessage, TResult>;
    this.settle(own, own.failure !== undefined ? { error: own.failure } : { result });
  }

  /** Rejects every waiting turn with `error` (close); the running one keeps going. */
  cancelWaiting(error: unknown): void {
    for (const turn of this.waiting.splice(0)) this.settle(turn, { error });
  }

  /** Rejects the running turn with `error`, unless its caller was already told. */
  cancelActive(error: unknown): void {
    if (this.running) this.settle(this.running, { error });
  }

  /**
   * The CLI is gone: rejects the running and the waiting turns (with their own `failure` when
   * they have one, else `error`), and every later `enqueue`. Idempotent.
   */
  halt(error: unknown): void {
    this.halted ??= { error };
    for (const turn of [...(this.running ? [this.running] : []), ...this.waiting.splice(0)])
      this.settle(turn, { error: turn.failure ?? error });
    this.running = undefined;
  }

  private next(): void {
    if (this.running || this.halted) return;
    const turn = this.waiting.shift();
    if (!turn) return;
    this.running = turn;
    turn.index = ++this.started;
    const timeoutMs = turn.timeoutMs ?? this.options.defaultTimeoutMs;
    turn.timer = setTimeout(() => {
      turn.failure ??= new SandboxTimeoutError({
        message: `The agent turn timed out after ${timeoutMs} ms`,
        timeoutMs,
        operation: 'agent-turn',
        provider: this.options.provider,
      });
      this.stop(turn);
    }, timeoutMs);
    this.options.start(turn);
  }

  /** The caller gave up on `turn`: tell it now; a waiting turn leaves the queue, a running one is interrupted. */
  private stop(turn: Turn<TPrompt, TMessage, TResult>): void {
    if (turn.settled) return;
    const waitingAt = this.waiting.indexOf(turn);
    if (waitingAt >= 0) {
      this.waiting.splice(waitingAt, 1);
      this.settle(turn, { error: turn.failure });
      return;
    }
    if (this.running !== turn) return;
    this.notify(turn, { error: turn.failure });
    this.options.interrupt();
    turn.escalation ??= setTimeout(() => this.options.kill(), this.options.interruptGraceMs);
  }

  private settle(turn: Turn<TPrompt, TMessage, TResult>, outcome: Outcome<TResult>): void {
    this.notify(turn, outcome);
    if (turn.settled) return;
    turn.settled = true;
    clearTimeout(turn.timer);
    clearTimeout(turn.escalation);
    if (turn.onAbort) turn.signal?.removeEventListener('abort', turn.onAbort);
    if (this.running === turn) {
      this.running = undefined;
      this.next();
    }
  }

  /** Tells the caller how the turn ended. A turn can be told early (abort, timeout) and still hold the CLI until it stops. */
  private notify(turn: Turn<TPrompt, TMessage, TResult>, outcome: Outcome<TResult>): void {
    if (turn.notified) return;
    turn.notified = true;
    if ('result' in outcome) {
      turn.messages.end();
      turn.resolve(outcome.result);
    } else {
      turn.messages.end(outcome.error);
      turn.reject(outcome.error);
      turn.savedResolve();
    }
  }
}
