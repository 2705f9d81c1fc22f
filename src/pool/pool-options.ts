/**
 * The pool's options and the pure decisions it makes from them: when a held sandbox is retired,
 * how many creations to start, how long to wait after failed ones. Kept free of I/O so that each
 * rule is unit-tested on its own (test/core/sandbox-pool.test.ts).
 */
import { z } from 'zod';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { parseOptions } from '../kit/validate.js';
import { createSandboxOptionsSchema, millisecondsSchema, type CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';

/** What `prepare` and `healthCheck` are given besides the sandbox. */
export interface SandboxPoolHookContext {
  /**
   * Aborts when the work is no longer wanted: the pool is closing, or the `acquire` that waits on
   * a health check was aborted. A hook should stop and reject (any rejection is fine then).
   */
  readonly signal: AbortSignal;
}

/** Options of `createSandboxPool`. */
export interface SandboxPoolOptions {
  /** How many ready sandboxes the pool keeps, an integer from 0 to 1000. 0 makes every `acquire` a cold create. */
  size: number;
  /**
   * What each sandbox is created with (`provider.create(createOptions)`), for example an `image`
   * that is a snapshot of a prepared sandbox. Validated when the pool is created. `name` is
   * refused (names are unique and the pool creates many) and so is `signal` (the pool owns it).
   * @default {} (the provider's defaults)
   */
  createOptions?: Omit<CreateSandboxOptions, 'signal' | 'name'>;
  /**
   * Milliseconds a ready sandbox may wait unused before it is retired and replaced. Must be below
   * `createOptions.idleTimeoutMs` when that is set (a waiting sandbox is idle).
   * @default no limit
   */
  maxIdleMs?: number;
  /**
   * Milliseconds after its creation began that a ready sandbox is retired and replaced. Must be
   * below `createOptions.timeoutMs` when that is set, and worth setting then: without it a
   * sandbox can be handed over shortly before its lifetime ends. A sandbox already handed out is
   * the caller's and is never retired.
   * @default no limit
   */
  maxAgeMs?: number;
  /**
   * Runs once on each new sandbox before it counts as ready: install the CLI, clone a
   * repository, warm a cache. It is awaited; what it resolves to is ignored. A rejection (or a throw) discards the sandbox: in the background
   * that is an `error` event and a retry with backoff; for a cold `acquire` it rejects the call.
   * @default none
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a synchronous prepare returns nothing; what a promise resolves to is ignored
  prepare?: (sandbox: Sandbox, context: SandboxPoolHookContext) => Promise<unknown> | void;
  /**
   * Runs on a ready sandbox just before `acquire` hands it over (never on one created for that
   * call). `false`, a rejection or a throw retire the sandbox (`retired`, reason `unhealthy`) and
   * `acquire` goes on with the next one. Its time is part of `acquire`'s.
   * @default none (a ready sandbox is handed over at once)
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a check that throws on failure returns nothing, and an async one resolves to void
  healthCheck?: (sandbox: Sandbox, context: SandboxPoolHookContext) => Promise<boolean | void> | boolean | void;
  /** How many background creations (with their `prepare`) run at once, an integer from 1 to 64. @default 2 */
  concurrency?: number;
  /** Milliseconds to wait after the first failed background creation; doubled per failure in a row. @default 1000 */
  retryDelayMs?: number;
  /** The longest wait between failed background creations, in milliseconds. @default 30000 */
  maxRetryDelayMs?: number;
}

/** The options after validation, with defaults applied. */
export interface ParsedSandboxPoolOptions {
  size: number;
  createOptions: Omit<CreateSandboxOptions, 'signal' | 'name'>;
  maxIdleMs: number | undefined;
  maxAgeMs: number | undefined;
  prepare: SandboxPoolOptions['prepare'];
  healthCheck: SandboxPoolOptions['healthCheck'];
  concurrency: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

const hookSchema = z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', { message: 'must be a function' });

const poolOptionsSchema = z.strictObject({
  size: z
    .number()
    .int({ message: 'must be a whole number' })
    .min(0, { message: 'must be 0 or more' })
    .max(1000, { message: 'must be at most 1000' }),
  createOptions: createSandboxOptionsSchema.optional(),
  maxIdleMs: millisecondsSchema.optional(),
  maxAgeMs: millisecondsSchema.optional(),
  prepare: hookSchema.optional(),
  healthCheck: hookSchema.optional(),
  concurrency: z
    .number()
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be at least 1' })
    .max(64, { message: 'must be at most 64' })
    .optional(),
  retryDelayMs: millisecondsSchema.optional(),
  maxRetryDelayMs: millisecondsSchema.optional(),
});

function invalid(argument: string, message: string): SandboxInvalidArgumentError {
  return new SandboxInvalidArgumentError({ message: `Invalid pool options: ${argument}: ${message}`, argument });
}

/**
 * Validates the options of `createSandboxPool` and applies the defaults.
 * @throws SandboxInvalidArgumentError naming the field (`size`, `createOptions.timeoutMs`, `maxAgeMs`, …).
 */
export function parsePoolOptions(options: unknown): ParsedSandboxPoolOptions {
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object with at least size');
  const parsed = parseOptions(poolOptionsSchema, options, { what: 'pool options' });
  // The user's own object goes to `create`; the parsed copy only proves it valid.
  const createOptions = ((options as SandboxPoolOptions).createOptions ?? {}) as CreateSandboxOptions;
  if (createOptions.name !== undefined) throw invalid('createOptions.name', 'a pool creates many sandboxes and names are unique');
  if (createOptions.signal !== undefined)
    throw invalid('createOptions.signal', 'the pool owns its creations; pass a signal to acquire instead');
  const { timeoutMs, idleTimeoutMs } = createOptions;
  if (parsed.maxAgeMs !== undefined && timeoutMs !== undefined && parsed.maxAgeMs >= timeoutMs) {
    throw invalid('maxAgeMs', `must be below createOptions.timeoutMs (${timeoutMs} ms), or sandboxes would end while they wait`);
  }
  if (parsed.maxIdleMs !== undefined && idleTimeoutMs !== undefined && parsed.maxIdleMs >= idleTimeoutMs) {
    throw invalid('maxIdleMs', `must be below createOptions.idleTimeoutMs (${idleTimeoutMs} ms): a waiting sandbox is idle`);
  }
  const retryDelayMs = parsed.retryDelayMs ?? 1000;
  const maxRetryDelayMs = parsed.maxRetryDelayMs ?? Math.max(30_000, retryDelayMs);
  if (maxRetryDelayMs < retryDelayMs) throw invalid('maxRetryDelayMs', `must be at least retryDelayMs (${retryDelayMs} ms)`);
  return {
    size: parsed.size,
    createOptions,
    maxIdleMs: parsed.maxIdleMs,
    maxAgeMs: parsed.maxAgeMs,
    prepare: parsed.prepare as SandboxPoolOptions['prepare'],
    healthCheck: parsed.healthCheck as SandboxPoolOptions['healthCheck'],
    concurrency: parsed.concurrency ?? 2,
    retryDelayMs,
    maxRetryDelayMs,
  };
}

/** Why the pool let go of a sandbox it held (the `retired` event's `reason`). */
export type SandboxPoolRetireReason =
  /** It waited longer than `maxIdleMs`. */
  | 'max-idle'
  /** It is older than `maxAgeMs`. */
  | 'max-age'
  /** `healthCheck` said no, threw, or rejected. */
  | 'unhealthy'
  /** `prepare` failed on it. */
  | 'prepare-failed'
  /** It ended on its own while it waited (a timeout, a crash, someone else terminated it). */
  | 'ended'
  /** The pool closed. */
  | 'closed';

/** When a held sandbox was made and put in the pool, in `Date.now()` milliseconds. */
export interface HeldTimes {
  /** When its `create` began. */
  readonly createdAt: number;
  /** When it became ready (after `prepare`). */
  readonly readyAt: number;
}

/**
 * Whether a ready sandbox must be retired at `now`, and why; `undefined` keeps it. Age wins over
 * idleness when both ran out (it is the harder limit).
 */
export function planRetirement(
  held: HeldTimes,
  now: number,
  limits: Pick<ParsedSandboxPoolOptions, 'maxAgeMs' | 'maxIdleMs'>,
): 'max-age' | 'max-idle' | undefined {
  if (limits.maxAgeMs !== undefined && now - held.createdAt >= limits.maxAgeMs) return 'max-age';
  if (limits.maxIdleMs !== undefined && now - held.readyAt >= limits.maxIdleMs) return 'max-idle';
  return undefined;
}

/** When (in `Date.now()` milliseconds) a ready sandbox's first limit runs out; `undefined` for never. */
export function retirementDeadline(held: HeldTimes, limits: Pick<ParsedSandboxPoolOptions, 'maxAgeMs' | 'maxIdleMs'>): number | undefined {
  const deadlines = [
    limits.maxAgeMs === undefined ? undefined : held.createdAt + limits.maxAgeMs,
    limits.maxIdleMs === undefined ? undefined : held.readyAt + limits.maxIdleMs,
  ].filter((deadline): deadline is number => deadline !== undefined);
  return deadlines.length === 0 ? undefined : Math.min(...deadlines);
}

/** How many background creations to start now. */
export function planReplenish(state: {
  /** Sandboxes ready in the pool. */
  ready: number;
  /** Background creations under way (with their `prepare`). */
  creating: number;
  size: number;
  concurrency: number;
  /** True while a backoff after failed creations runs, or once the pool is closed. */
  paused: boolean;
}): number {
  if (state.paused) return 0;
  const missing = state.size - state.ready - state.creating;
  const slots = state.concurrency - state.creating;
  return Math.max(0, Math.min(missing, slots));
}

/**
 * Milliseconds to wait after `failures` background creations failed in a row (from 1):
 * `retryDelayMs` doubled per failure, at most `maxRetryDelayMs`, with up to a quarter taken off at
 * random (`random` in [0, 1)) so that pools started together do not retry in step.
 */
export function backoffDelayMs(
  failures: number,
  options: Pick<ParsedSandboxPoolOptions, 'retryDelayMs' | 'maxRetryDelayMs'>,
  random: number = Math.random(),
): number {
  const exponent = Math.min(Math.max(0, failures - 1), 30);
  const full = Math.min(options.maxRetryDelayMs, options.retryDelayMs * 2 ** exponent);
  return Math.max(1, Math.round(full * (1 - random / 4)));
}
