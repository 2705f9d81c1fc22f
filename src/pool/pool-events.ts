/**
 * The pool's events, on `pool.events` (an eventemitter3 emitter like `provider.events`; the
 * provider's own events keep flowing there too). Listeners run synchronously; a throwing
 * listener does not affect the pool. `error` is an ordinary event: with no listener nothing is
 * thrown.
 */
import { EventEmitter } from 'eventemitter3';
import type { SandboxPoolRetireReason } from './pool-options.js';

/** Which step of the pool an `error` event comes from. */
export type SandboxPoolOperation = 'create' | 'prepare' | 'health-check' | 'terminate';

export interface SandboxPoolEvents {
  /**
   * `provider.create` resolved. `durationMs`: milliseconds it took. `forAcquire`: true when an
   * `acquire` found nothing ready and created this one for itself (a cold acquire).
   */
  created: [event: { provider: string; sandboxId: string; durationMs: number; forAcquire: boolean }];
  /** `prepare` finished on a new sandbox. `durationMs`: milliseconds it took. */
  prepared: [event: { provider: string; sandboxId: string; durationMs: number; forAcquire: boolean }];
  /** A sandbox joined the ready set; `ready` is how many are ready now. */
  ready: [event: { provider: string; sandboxId: string; ready: number }];
  /**
   * `acquire` handed a sandbox over. `warm`: it came from the ready set (false: created for the
   * call). `durationMs`: milliseconds the `acquire` took, health check or creation included.
   */
  acquired: [event: { provider: string; sandboxId: string; warm: boolean; durationMs: number }];
  /**
   * The pool let go of a sandbox it held and is terminating it (once per sandbox). `error` is
   * what the health check or `prepare` failed with, when that is the reason.
   */
  retired: [event: { provider: string; sandboxId: string; reason: SandboxPoolRetireReason; error?: unknown }];
  /**
   * A background step failed (a cold `acquire` rejects with its own failure instead), or a
   * `terminate` of a sandbox the pool let go of did. For a `create` or `prepare`, `attempt` counts the failures in a row
   * (from 1) and `retryInMs` says when the pool tries again (milliseconds); nothing is retried
   * before then. `sandboxId` is `undefined` when no sandbox came to exist.
   */
  error: [
    event: {
      provider: string;
      operation: SandboxPoolOperation;
      sandboxId: string | undefined;
      error: unknown;
      attempt: number | undefined;
      retryInMs: number | undefined;
    },
  ];
  /** `close()` finished: everything the pool held is terminated. */
  closed: [event: { provider: string }];
}

/** The emitter type of `SandboxPool.events`. */
export class SandboxPoolEmitter extends EventEmitter<SandboxPoolEvents> {}
