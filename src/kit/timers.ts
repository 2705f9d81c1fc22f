/**
 * Node timers fire at once for delays above 2**31-1 ms (about 24.8 days) and print a warning: a
 * long sandbox lifetime scheduled with a plain `setTimeout` ends the sandbox immediately. These
 * timers chain shorter ones instead, so any finite delay fires when it should, never early.
 */

/** The largest delay one Node timer can hold, in milliseconds. */
export const maxTimerDelayMs = 2 ** 31 - 1;

/** A cancellable timer that does not keep the process alive (sandboxes end with their creator). */
export interface LongTimer {
  /** Cancels the timer. Idempotent. */
  clear(): void;
}

/** Calls `callback` once after `delayMs` (any finite delay), unreferenced. */
export function setLongTimeout(callback: () => void, delayMs: number, options: { ref?: boolean } = {}): LongTimer {
  const deadline = Date.now() + Math.max(0, delayMs);
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;
  const arm = () => {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return callback();
    timer = setTimeout(arm, Math.min(remaining, maxTimerDelayMs));
    if (!options.ref) timer.unref();
  };
  const remaining = Math.max(0, delayMs);
  timer = setTimeout(() => (cleared ? undefined : arm()), Math.min(remaining, maxTimerDelayMs));
  if (!options.ref) timer.unref();
  return {
    clear() {
      cleared = true;
      if (timer) clearTimeout(timer);
    },
  };
}
