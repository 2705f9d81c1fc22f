/**
 * Warm pools (src/pool): the pure planning and validation functions, then the pool itself on the
 * real local provider (bubblewrap sandboxes start in tens of milliseconds, so these stay fast).
 * Waits are on events and states, never on durations.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { SandboxInvalidArgumentError } from '../../src/errors/index.js';
import {
  createSandboxPool,
  SandboxPoolClosedError,
  type SandboxPool,
  type SandboxPoolEvents,
  type SandboxPoolOptions,
} from '../../src/pool/index.js';
import type { SandboxProvider } from '../../src/spec/sandbox.js';
import { backoffDelayMs, parsePoolOptions, planReplenish, planRetirement, retirementDeadline } from '../../src/pool/pool-options.js';

function invalidArgument(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    expect(SandboxInvalidArgumentError.isInstance(error), String(error)).toBe(true);
    return (error as SandboxInvalidArgumentError).argument;
  }
  throw new Error('expected a SandboxInvalidArgumentError');
}

describe('parsePoolOptions', () => {
  it('applies the documented defaults', () => {
    expect(parsePoolOptions({ size: 2 })).toEqual({
      size: 2,
      createOptions: {},
      maxIdleMs: undefined,
      maxAgeMs: undefined,
      prepare: undefined,
      healthCheck: undefined,
      concurrency: 2,
      retryDelayMs: 1000,
      maxRetryDelayMs: 30_000,
    });
  });

  it('keeps the caller’s createOptions object as given', () => {
    const createOptions = { image: 'host', timeoutMs: 60_000, tags: { team: 'a' } };
    expect(parsePoolOptions({ size: 1, createOptions, maxAgeMs: 30_000 }).createOptions).toBe(createOptions);
  });

  it('names the offending field', () => {
    expect(invalidArgument(() => parsePoolOptions(undefined))).toBe('options');
    expect(invalidArgument(() => parsePoolOptions({}))).toBe('size');
    expect(invalidArgument(() => parsePoolOptions({ size: -1 }))).toBe('size');
    expect(invalidArgument(() => parsePoolOptions({ size: 1.5 }))).toBe('size');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, concurrency: 0 }))).toBe('concurrency');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, maxIdleMs: 0 }))).toBe('maxIdleMs');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, maxAgeMs: 2 ** 31 }))).toBe('maxAgeMs');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, prepare: 'npm install' }))).toBe('prepare');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, healthCheck: true }))).toBe('healthCheck');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, createOptions: { timeoutMs: -5 } }))).toBe('createOptions.timeoutMs');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, createOptions: { name: 'worker' } }))).toBe('createOptions.name');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, createOptions: { signal: new AbortController().signal } }))).toBe(
      'createOptions.signal',
    );
    expect(invalidArgument(() => parsePoolOptions({ size: 1, retryDelayMs: 5000, maxRetryDelayMs: 100 }))).toBe('maxRetryDelayMs');
  });

  it('refuses limits that would let a sandbox end while it waits', () => {
    expect(invalidArgument(() => parsePoolOptions({ size: 1, maxAgeMs: 60_000, createOptions: { timeoutMs: 60_000 } }))).toBe('maxAgeMs');
    expect(invalidArgument(() => parsePoolOptions({ size: 1, maxIdleMs: 9000, createOptions: { idleTimeoutMs: 5000 } }))).toBe('maxIdleMs');
    expect(parsePoolOptions({ size: 1, maxAgeMs: 50_000, createOptions: { timeoutMs: 60_000 } }).maxAgeMs).toBe(50_000);
  });

  it('refuses unknown options by name', () => {
    const error = (() => {
      try {
        parsePoolOptions({ size: 1, maxIdle: 5 });
      } catch (caught) {
        return caught as SandboxInvalidArgumentError;
      }
    })();
    expect(error?.message).toMatch(/maxIdle/);
  });
});

describe('the pool’s plans', () => {
  const held = { createdAt: 1000, readyAt: 1500 };

  it('retires by age before idleness, and keeps what is within both limits', () => {
    expect(planRetirement(held, 2000, { maxAgeMs: 5000, maxIdleMs: 5000 })).toBeUndefined();
    expect(planRetirement(held, 2000, { maxAgeMs: undefined, maxIdleMs: 500 })).toBe('max-idle');
    expect(planRetirement(held, 2000, { maxAgeMs: 1000, maxIdleMs: 500 })).toBe('max-age');
    expect(planRetirement(held, 10 ** 12, { maxAgeMs: undefined, maxIdleMs: undefined })).toBeUndefined();
  });

  it('schedules the first limit to run out', () => {
    expect(retirementDeadline(held, { maxAgeMs: 5000, maxIdleMs: 1000 })).toBe(2500);
    expect(retirementDeadline(held, { maxAgeMs: 1200, maxIdleMs: 1000 })).toBe(2200);
    expect(retirementDeadline(held, { maxAgeMs: undefined, maxIdleMs: undefined })).toBeUndefined();
  });

  it('starts what is missing, within the concurrency, and nothing while paused', () => {
    expect(planReplenish({ ready: 0, creating: 0, size: 5, concurrency: 2, paused: false })).toBe(2);
    expect(planReplenish({ ready: 3, creating: 1, size: 5, concurrency: 2, paused: false })).toBe(1);
    expect(planReplenish({ ready: 5, creating: 0, size: 5, concurrency: 2, paused: false })).toBe(0);
    expect(planReplenish({ ready: 0, creating: 2, size: 5, concurrency: 2, paused: false })).toBe(0);
    expect(planReplenish({ ready: 0, creating: 0, size: 5, concurrency: 2, paused: true })).toBe(0);
    expect(planReplenish({ ready: 6, creating: 0, size: 5, concurrency: 2, paused: false })).toBe(0);
  });

  it('doubles the backoff per failure up to the cap, jitter taking off at most a quarter', () => {
    const limits = { retryDelayMs: 100, maxRetryDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 40].map((failures) => backoffDelayMs(failures, limits, 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelayMs(1, limits, 0.999)).toBeGreaterThanOrEqual(75);
    expect(backoffDelayMs(3, limits, 0.5)).toBe(350);
  });
});

// --- the pool on the local provider -----------------------------------------------------------

const provider = createLocalSandboxProvider();
const pools: SandboxPool[] = [];
const handedOut: Array<{ terminate(): Promise<void> }> = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await Promise.all(handedOut.splice(0).map((sandbox) => sandbox.terminate()));
  // Nothing a test started is left running.
  expect(await provider.list()).toEqual([]);
}, 30_000);

function open(options: SandboxPoolOptions, on: SandboxProvider = provider): SandboxPool {
  const pool = createSandboxPool(on, options);
  pools.push(pool);
  return pool;
}

/** The events the pool emitted, by name, in order. */
function record(pool: SandboxPool) {
  const seen: { [Name in keyof SandboxPoolEvents]: Array<SandboxPoolEvents[Name][0]> } = {
    created: [],
    prepared: [],
    ready: [],
    acquired: [],
    retired: [],
    error: [],
    closed: [],
  };
  for (const name of Object.keys(seen) as Array<keyof SandboxPoolEvents>) {
    (pool.events.on as (name: string, listener: (event: unknown) => void) => unknown).call(pool.events, name, (event) =>
      (seen[name] as unknown[]).push(event),
    );
  }
  return seen;
}

/** Resolves with the first event `name` that `match` accepts. */
function nextEvent<Name extends keyof SandboxPoolEvents>(
  pool: SandboxPool,
  name: Name,
  match: (event: SandboxPoolEvents[Name][0]) => boolean = () => true,
): Promise<SandboxPoolEvents[Name][0]> {
  return new Promise((resolve) => {
    const listener = (event: SandboxPoolEvents[Name][0]) => {
      if (!match(event)) return;
      pool.events.off(name, listener as never);
      resolve(event);
    };
    pool.events.on(name, listener as never);
  });
}

async function acquire(pool: SandboxPool, options?: { signal?: AbortSignal }) {
  const sandbox = await pool.acquire(options);
  handedOut.push(sandbox);
  return sandbox;
}

const waitOptions = { timeout: 20_000, interval: 20 };

describe('createSandboxPool on the local provider', () => {
  it('hands over a ready sandbox from a warm pool and replenishes behind it', async () => {
    const pool = open({ size: 2 });
    const seen = record(pool);
    await pool.waitUntilWarm();
    expect(pool.stats()).toMatchObject({ ready: 2, creating: 0, closed: false });
    const readyIds = seen.ready.map((event) => event.sandboxId);

    const sandbox = await acquire(pool);
    expect(readyIds).toContain(sandbox.id);
    expect(seen.acquired).toEqual([{ provider: 'local', sandboxId: sandbox.id, warm: true, durationMs: expect.any(Number) }]);
    expect((await sandbox.run(['echo', 'warm'])).stdout).toBe('warm\n');

    await pool.waitUntilWarm();
    expect(pool.stats().ready).toBe(2);
    expect(seen.created.map((event) => event.forAcquire)).toEqual([false, false, false]);
    expect(seen.ready.map((event) => event.sandboxId)).not.toContain(undefined);
    expect(new Set(seen.ready.map((event) => event.sandboxId)).size).toBe(3);
  });

  it('creates one for the call when nothing is ready (a cold acquire)', async () => {
    // A prepare may resolve to anything (here an ExecResult): it is awaited and its value ignored.
    const pool = open({ size: 0, createOptions: { env: { POOL: 'cold' } }, prepare: (sandbox) => sandbox.run(['true']) });
    const seen = record(pool);
    const sandbox = await acquire(pool);
    expect(seen.acquired).toEqual([{ provider: 'local', sandboxId: sandbox.id, warm: false, durationMs: expect.any(Number) }]);
    expect(seen.created).toEqual([{ provider: 'local', sandboxId: sandbox.id, durationMs: expect.any(Number), forAcquire: true }]);
    expect((await sandbox.run(['sh', '-c', 'echo $POOL'])).stdout).toBe('cold\n');
    expect(pool.stats()).toMatchObject({ ready: 0, creating: 0 });
  });

  it('never hands the same sandbox out twice, also to concurrent acquires beyond its size', async () => {
    const pool = open({ size: 3, concurrency: 3 });
    await pool.waitUntilWarm();
    const sandboxes = await Promise.all(Array.from({ length: 7 }, () => acquire(pool)));
    expect(new Set(sandboxes.map((sandbox) => sandbox.id)).size).toBe(7);
    await pool.waitUntilWarm();
    const fresh = await Promise.all(Array.from({ length: 3 }, () => acquire(pool)));
    for (const sandbox of fresh) expect(sandboxes.map((earlier) => earlier.id)).not.toContain(sandbox.id);
  });

  it('prepares each sandbox before it counts as ready', async () => {
    const pool = open({
      size: 1,
      prepare: async (sandbox, { signal }) => {
        await sandbox.files.write('/tmp/prepared', `prepared ${sandbox.id}`, { signal });
      },
    });
    const seen = record(pool);
    await pool.waitUntilWarm();
    const sandbox = await acquire(pool);
    expect(await sandbox.files.readText('/tmp/prepared')).toBe(`prepared ${sandbox.id}`);
    expect(seen.prepared.map((event) => event.sandboxId)).toContain(sandbox.id);
  });

  it('retires a sandbox that waited longer than maxIdleMs, terminates it, and replaces it', async () => {
    const pool = open({ size: 1, maxIdleMs: 150 });
    const retired = await nextEvent(pool, 'retired');
    expect(retired).toEqual({ provider: 'local', sandboxId: expect.any(String), reason: 'max-idle' });
    const replacement = await nextEvent(pool, 'ready');
    expect(replacement.sandboxId).not.toBe(retired.sandboxId);
    await vi.waitFor(async () => expect((await provider.list()).map((info) => info.id)).not.toContain(retired.sandboxId), waitOptions);
  });

  it('retires a sandbox older than maxAgeMs and never hands it over', async () => {
    const pool = open({ size: 1, maxAgeMs: 150 });
    const retired = await nextEvent(pool, 'retired');
    expect(retired.reason).toBe('max-age');
    const sandbox = await acquire(pool);
    expect(sandbox.id).not.toBe(retired.sandboxId);
  });

  it('treats a sandbox already past maxAgeMs when ready as a failure and backs off, instead of churning', async () => {
    const pool = open({ size: 1, concurrency: 1, maxAgeMs: 1, retryDelayMs: 600_000 });
    const seen = record(pool);
    const error = await nextEvent(pool, 'error');
    expect(error).toMatchObject({ operation: 'create', attempt: 1, sandboxId: expect.any(String) });
    expect(SandboxInvalidArgumentError.isInstance(error.error) && error.error.argument).toBe('maxAgeMs');
    expect(seen.retired).toEqual([{ provider: 'local', sandboxId: error.sandboxId, reason: 'max-age' }]);
    expect(pool.stats()).toMatchObject({ ready: 0, creating: 0, consecutiveFailures: 1 });
  });

  it('retires a sandbox that fails the health check and hands over a healthy one', async () => {
    const checked: string[] = [];
    let failFirst = true;
    const pool = open({
      size: 2,
      healthCheck: async (sandbox) => {
        checked.push(sandbox.id);
        if (failFirst) {
          failFirst = false;
          return false;
        }
        return (await sandbox.run(['true'])).exitCode === 0;
      },
    });
    const seen = record(pool);
    await pool.waitUntilWarm();
    const sandbox = await acquire(pool);
    expect(checked).toHaveLength(2);
    expect(sandbox.id).toBe(checked[1]);
    expect(seen.retired).toEqual([{ provider: 'local', sandboxId: checked[0], reason: 'unhealthy' }]);
    await vi.waitFor(async () => expect((await provider.list()).map((info) => info.id)).not.toContain(checked[0]), waitOptions);
  });

  it('counts a throwing health check as unhealthy and reports its error', async () => {
    const failure = new Error('the CLI is missing');
    let calls = 0;
    const pool = open({
      size: 1,
      healthCheck: () => {
        calls++;
        if (calls === 1) throw failure;
      },
    });
    const seen = record(pool);
    await pool.waitUntilWarm();
    const sandbox = await acquire(pool);
    expect(seen.retired).toEqual([{ provider: 'local', sandboxId: expect.any(String), reason: 'unhealthy', error: failure }]);
    expect(seen.retired[0]!.sandboxId).not.toBe(sandbox.id);
  });

  it('discards a sandbox whose prepare fails, reports it, and retries later', async () => {
    const failure = new Error('git clone failed');
    let attempts = 0;
    const pool = open({
      size: 1,
      concurrency: 1,
      retryDelayMs: 20,
      prepare: () => {
        attempts++;
        if (attempts === 1) throw failure;
      },
    });
    const seen = record(pool);
    const error = await nextEvent(pool, 'error');
    expect(error).toEqual({
      provider: 'local',
      operation: 'prepare',
      sandboxId: expect.any(String),
      error: failure,
      attempt: 1,
      retryInMs: expect.any(Number),
    });
    expect(seen.retired).toEqual([{ provider: 'local', sandboxId: error.sandboxId, reason: 'prepare-failed', error: failure }]);
    await pool.waitUntilWarm();
    expect(pool.stats().consecutiveFailures).toBe(0);
    await vi.waitFor(async () => expect((await provider.list()).map((info) => info.id)).not.toContain(error.sandboxId), waitOptions);
  });

  it('rejects a cold acquire with the prepare failure and leaves nothing behind', async () => {
    const failure = new Error('npm install failed');
    const pool = open({ size: 0, prepare: () => Promise.reject(failure) });
    await expect(pool.acquire()).rejects.toBe(failure);
    await vi.waitFor(async () => expect(await provider.list()).toEqual([]), waitOptions);
  });

  it('backs off after failed creations: one attempt per failure, each wait longer, up to the cap', async () => {
    const pool = open({ size: 1, concurrency: 1, retryDelayMs: 10, maxRetryDelayMs: 40, createOptions: { image: '/nonexistent/rootfs' } });
    const errors: Array<SandboxPoolEvents['error'][0]> = [];
    const fourth = new Promise<void>((resolve) =>
      pool.events.on('error', (event) => {
        errors.push(event);
        if (errors.length === 4) resolve();
      }),
    );
    await fourth;
    expect(errors.map((event) => [event.operation, event.attempt, event.sandboxId])).toEqual([
      ['create', 1, undefined],
      ['create', 2, undefined],
      ['create', 3, undefined],
      ['create', 4, undefined],
    ]);
    expect(SandboxInvalidArgumentError.isInstance(errors[0]!.error)).toBe(true);
    // The delays follow backoffDelayMs: 10, 20, 40, 40 less at most a quarter of jitter.
    const bounds = [10, 20, 40, 40];
    errors.forEach((event, index) => {
      expect(event.retryInMs).toBeLessThanOrEqual(bounds[index]!);
      expect(event.retryInMs).toBeGreaterThanOrEqual(bounds[index]! * 0.75);
    });
  });

  it('does not retry a failed creation before its backoff ends (no hot loop)', async () => {
    const pool = open({ size: 2, concurrency: 1, retryDelayMs: 600_000, createOptions: { image: '/nonexistent/rootfs' } });
    const seen = record(pool);
    await nextEvent(pool, 'error');
    // Real work on the same provider meanwhile: the pool stays paused through it.
    for (let round = 0; round < 3; round++) await (await provider.create()).terminate();
    expect(seen.error).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ creating: 0, ready: 0, consecutiveFailures: 1 });
    // A cold acquire still tries (and says why it failed), whatever the backoff.
    await expect(pool.acquire()).rejects.toSatisfy(SandboxInvalidArgumentError.isInstance);
  });

  it('rejects an aborted acquire with signal.reason and terminates the sandbox it was creating', async () => {
    let release: () => void = () => undefined;
    const preparing = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    const pool = open({
      size: 0,
      // Ignores its signal on purpose: the acquire must reject at once anyway.
      prepare: async (sandbox) => {
        started.push(sandbox.id);
        await preparing;
      },
    });
    const controller = new AbortController();
    const reason = new Error('the user went away');
    const acquiring = pool.acquire({ signal: controller.signal });
    await nextEvent(pool, 'created');
    controller.abort(reason);
    await expect(acquiring).rejects.toBe(reason);
    release();
    await vi.waitFor(async () => expect(await provider.list()).toEqual([]), waitOptions);
    expect(started).toHaveLength(1);

    const already = AbortSignal.abort(new Error('aborted before'));
    await expect(pool.acquire({ signal: already })).rejects.toThrow('aborted before');
  });

  it('puts a sandbox back when the acquire gives up during its health check and the check passes', async () => {
    let pass: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (pass = resolve));
    let gated = true;
    const pool = open({
      size: 1,
      healthCheck: async () => {
        if (gated) await gate;
        return true;
      },
    });
    await pool.waitUntilWarm();
    const [waiting] = (await provider.list()).map((info) => info.id);
    const controller = new AbortController();
    const acquiring = pool.acquire({ signal: controller.signal });
    expect(pool.stats()).toMatchObject({ ready: 0, checking: 1 });
    controller.abort(new Error('timed out waiting'));
    await expect(acquiring).rejects.toThrow('timed out waiting');
    gated = false;
    pass();
    await pool.waitUntilWarm();
    const sandbox = await acquire(pool);
    expect(sandbox.id).toBe(waiting);
  });

  it('never hands out a sandbox that ended while it waited', async () => {
    const pool = open({ size: 1, concurrency: 1 });
    await pool.waitUntilWarm();
    const [waiting] = (await provider.list()).map((info) => info.id);
    const retired = nextEvent(pool, 'retired');
    await (await provider.fromId(waiting!)).terminate();
    expect(await retired).toEqual({ provider: 'local', sandboxId: waiting, reason: 'ended' });
    const sandbox = await acquire(pool);
    expect(sandbox.id).not.toBe(waiting);
  });

  it('close terminates everything it holds, aborts a waiting acquire, refuses later ones, and is idempotent', async () => {
    let release: () => void = () => undefined;
    const slow = new Promise<void>((resolve) => (release = resolve));
    let prepares = 0;
    const pool = createSandboxPool(provider, {
      size: 2,
      prepare: async (_sandbox, { signal }) => {
        // The first two warm up at once; every later one waits until the close aborts it.
        if (++prepares <= 2) return;
        await new Promise<void>((resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          void slow.then(resolve);
        });
      },
    });
    const seen = record(pool);
    await pool.waitUntilWarm();
    const kept = await pool.acquire(); // the caller's: close leaves it alone
    const cold = createSandboxPool(provider, { size: 0, prepare: () => slow });
    // Its rejection is expected now, so that it never counts as unhandled while the close runs.
    const coldRejected = expect(cold.acquire()).rejects.toSatisfy(SandboxPoolClosedError.isInstance);
    await nextEvent(cold, 'created');
    await vi.waitFor(() => expect(pool.stats().creating).toBe(1), waitOptions);

    const closing = pool.close();
    expect(pool.close()).toBeInstanceOf(Promise);
    await expect(pool.acquire()).rejects.toSatisfy(SandboxPoolClosedError.isInstance);
    await expect(pool.waitUntilWarm()).rejects.toSatisfy(SandboxPoolClosedError.isInstance);
    await closing;
    await pool.close();
    await cold.close();
    await coldRejected;
    release();

    expect(seen.closed).toEqual([{ provider: 'local' }]);
    expect(seen.retired.map((event) => event.reason)).toEqual(['closed']);
    expect((await provider.list()).map((info) => info.id)).toEqual([kept.id]);
    expect(pool.stats()).toEqual({ ready: 0, creating: 0, checking: 0, consecutiveFailures: 0, closed: true });
    expect((await kept.run(['echo', 'still mine'])).stdout).toBe('still mine\n');
    await kept.terminate();
  });

  it('closes at the end of an await using block', async () => {
    let closed: SandboxPool | undefined;
    {
      await using pool = createSandboxPool(provider, { size: 1 });
      await pool.waitUntilWarm();
      expect(await provider.list()).toHaveLength(1);
      closed = pool;
    }
    expect(closed.stats().closed).toBe(true);
    expect(await provider.list()).toEqual([]);
  });

  it('validates its arguments before any I/O', async () => {
    expect(invalidArgument(() => createSandboxPool(provider, { size: -1 }))).toBe('size');
    const pool = open({ size: 0 });
    await expect(pool.acquire({ signal: 'soon' as never })).rejects.toSatisfy(
      (error: unknown) => SandboxInvalidArgumentError.isInstance(error) && error.argument === 'signal',
    );
    await expect(pool.close({ signal: 1 as never })).rejects.toSatisfy(SandboxInvalidArgumentError.isInstance);
  });
});
