import { describe, expect, it } from 'vitest';
import {
  ProcessOutcome,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxPausedError,
  SandboxTimeoutError,
  setLongTimeout,
} from '../../src/kit/index.js';

function lifecycle(options: { idleTimeoutMs?: number; teardown?: () => Promise<void> } = {}) {
  const events = new SandboxEmitter();
  const seen: string[] = [];
  events.on('sandbox-terminated', (event) => seen.push(`terminated:${event.reason}`));
  events.on('exec-start', (event) => seen.push(`start:${event.execId}`));
  events.on('exec-end', (event) => seen.push(`end:${event.execId}:${event.exitCode}`));
  const torn: string[] = [];
  const state = new SandboxLifecycle({
    provider: 'test',
    sandboxId: 'sb-1',
    events,
    idleTimeoutMs: options.idleTimeoutMs,
    teardown: options.teardown ?? (async (status) => void torn.push(status.reason)),
  });
  return { state, events, seen, torn };
}

describe('SandboxLifecycle', () => {
  it('ends once: one teardown, one sandbox-terminated, every waiter resolved, later calls refused', async () => {
    const { state, seen, torn } = lifecycle();
    const waiting = [state.wait(), state.wait()];
    await Promise.all([state.end({ state: 'terminated', reason: 'terminated' }), state.end({ state: 'terminated', reason: 'crashed' })]);
    expect(await Promise.all(waiting)).toEqual([
      { state: 'terminated', reason: 'terminated' },
      { state: 'terminated', reason: 'terminated' },
    ]);
    expect(torn).toEqual(['terminated']);
    expect(seen).toEqual(['terminated:terminated']);
    expect(() => state.assertRunning()).toThrow(SandboxNotFoundError);
    expect(await state.poll()).toEqual({ state: 'terminated', reason: 'terminated' });
  });

  it('wait rejects with signal.reason on abort and forgets the waiter', async () => {
    const { state } = lifecycle();
    const controller = new AbortController();
    const reason = new Error('stop waiting');
    const waiting = state.wait({ signal: controller.signal });
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
  });

  it('a lifetime beyond the longest Node timer does not end the sandbox early', async () => {
    const { state } = lifecycle();
    state.armLifetime(3e9);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(state.isRunning()).toBe(true);
    await state.end({ state: 'terminated', reason: 'terminated' });
  });

  it('the idle timer ends an idle sandbox and waits for running commands', async () => {
    const { state } = lifecycle({ idleTimeoutMs: 30 });
    const untrack = state.track({ sandboxEnded: () => undefined });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(state.isRunning()).toBe(true);
    untrack();
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'idle-timeout' });
  });

  it('a teardown that throws still ends the sandbox and reports the error', async () => {
    const failure = new Error('teardown failed');
    const { state, seen } = lifecycle({ teardown: async () => Promise.reject(failure) });
    await expect(state.end({ state: 'terminated', reason: 'terminated' })).rejects.toBe(failure);
    expect(state.ended?.reason).toBe('terminated');
    expect(seen).toEqual(['terminated:terminated']);
  });
});

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SandboxLifecycle.waitObserving', () => {
  it('asks the provider each interval until the ask finds the sandbox gone, then stops asking', async () => {
    const { state } = lifecycle();
    let asks = 0;
    const ended = state.waitObserving(
      {},
      async () => {
        asks++;
        if (asks === 1) throw new Error('a failed ask is asked again');
        if (asks === 3) await state.end({ state: 'terminated', reason: 'crashed' });
      },
      { intervalMs: 5, askAtOnce: true },
    );
    expect(await ended).toEqual({ state: 'terminated', reason: 'crashed' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(asks).toBe(3);
  });

  it('askNow false skips rounds; without askAtOnce the first ask waits one interval', async () => {
    const { state } = lifecycle();
    const asked: boolean[] = [];
    let allowed = false;
    const ended = state.waitObserving(
      {},
      async () => {
        asked.push(allowed);
        await state.end({ state: 'terminated', reason: 'terminated' });
      },
      { intervalMs: 5, askNow: () => allowed },
    );
    expect(asked).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 25));
    expect(asked).toEqual([]);
    allowed = true;
    expect(await ended).toEqual({ state: 'terminated', reason: 'terminated' });
    expect(asked).toEqual([true]);
  });

  it('an aborted wait rejects with signal.reason and stops asking', async () => {
    const { state } = lifecycle();
    const controller = new AbortController();
    let asks = 0;
    const ended = state.waitObserving({ signal: controller.signal }, async () => void asks++, { intervalMs: 5, askAtOnce: true });
    const reason = new Error('stop waiting');
    controller.abort(reason);
    await expect(ended).rejects.toBe(reason);
    const seen = asks;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(asks).toBe(seen);
    expect(state.isRunning()).toBe(true);
    await state.end({ state: 'terminated', reason: 'terminated' });
  });
});

describe('SandboxLifecycle pause and resume', () => {
  it('pauses and resumes once each, however often called, and tells paused from ended', async () => {
    const { state } = lifecycle();
    const calls: string[] = [];
    const freeze = async () => void calls.push('freeze');
    const thaw = async () => void calls.push('thaw');
    await state.resume(thaw);
    await Promise.all([state.pause(freeze), state.pause(freeze)]);
    await state.pause(freeze);
    expect(calls).toEqual(['freeze']);
    expect(await state.poll()).toEqual({ state: 'paused' });
    expect(state.paused).toBe(true);
    expect(state.isRunning()).toBe(true);
    expect(() => state.assertRunning()).toThrow(SandboxPausedError);
    expect(() => state.assertAlive()).not.toThrow();
    const error = (() => {
      try {
        state.assertRunning();
      } catch (caught) {
        return caught as SandboxPausedError;
      }
    })();
    expect(error?.sandboxId).toBe('sb-1');
    expect(error?.provider).toBe('test');
    await Promise.all([state.resume(thaw), state.resume(thaw)]);
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(await state.poll()).toEqual({ state: 'running' });
    expect(() => state.assertRunning()).not.toThrow();
  });

  it('a pause stops the lifetime clock with what was left, and the resume runs it on', async () => {
    const { state } = lifecycle();
    state.armLifetime(60);
    await state.pause(async () => undefined);
    const left = state.remainingLifetimeMs;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(60);
    expect(state.deadline).toBeUndefined();
    // Far past the deadline, still paused: the clock stood still.
    await tick(150);
    expect(state.isRunning()).toBe(true);
    expect(state.remainingLifetimeMs).toBe(left);
    await state.resume(async () => undefined);
    expect(state.deadline).toBeDefined();
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'lifetime-timeout' });
  });

  it('a lifetime armed while paused is what is left at the resume', async () => {
    const { state } = lifecycle();
    state.armLifetime(3e9);
    await state.pause(async () => undefined);
    state.armLifetime(20);
    expect(state.remainingLifetimeMs).toBe(20);
    await tick(60);
    expect(state.isRunning()).toBe(true);
    await state.resume(async () => undefined);
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'lifetime-timeout' });
  });

  it('a paused sandbox never reaches its idle timeout; after the resume the idle clock starts afresh', async () => {
    const { state } = lifecycle({ idleTimeoutMs: 30 });
    await state.pause(async () => undefined);
    // A command ending while paused is activity, but the idle clock stays stopped.
    const untrack = state.track({ sandboxEnded: () => undefined });
    untrack();
    await tick(100);
    expect(state.isRunning()).toBe(true);
    expect(await state.poll()).toEqual({ state: 'paused' });
    await state.resume(async () => undefined);
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'idle-timeout' });
  });

  it('a failed freeze leaves the sandbox running with its clocks; a failed thaw leaves it paused', async () => {
    const { state } = lifecycle();
    state.armLifetime(40);
    const frozeBadly = new Error('freeze failed');
    await expect(state.pause(async () => Promise.reject(frozeBadly))).rejects.toBe(frozeBadly);
    expect(await state.poll()).toEqual({ state: 'running' });
    expect(() => state.assertRunning()).not.toThrow();
    await state.pause(async () => undefined);
    const thawedBadly = new Error('thaw failed');
    await expect(state.resume(async () => Promise.reject(thawedBadly))).rejects.toBe(thawedBadly);
    expect(await state.poll()).toEqual({ state: 'paused' });
    await state.resume(async () => undefined);
    // The lifetime armed before the failed freeze still ends the sandbox.
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'lifetime-timeout' });
  });

  it('pause and resume run one at a time, in call order', async () => {
    const { state } = lifecycle();
    const calls: string[] = [];
    let release!: () => void;
    const frozen = new Promise<void>((resolve) => (release = resolve));
    const pausing = state.pause(async () => {
      calls.push('freeze start');
      await frozen;
      calls.push('freeze end');
    });
    const resuming = state.resume(async () => void calls.push('thaw'));
    await tick(10);
    expect(calls).toEqual(['freeze start']);
    // While the freeze runs, the sandbox already counts as paused.
    expect(() => state.assertRunning()).toThrow(SandboxPausedError);
    release();
    await Promise.all([pausing, resuming]);
    expect(calls).toEqual(['freeze start', 'freeze end', 'thaw']);
    expect(await state.poll()).toEqual({ state: 'running' });
  });

  it('a paused sandbox ends like a running one; pause and resume after the end are SandboxNotFoundError', async () => {
    const { state, torn, seen } = lifecycle();
    await state.pause(async () => undefined);
    const running = state.whenRunning();
    const waiting = state.wait();
    await state.end({ state: 'terminated', reason: 'terminated' });
    await running;
    expect(await waiting).toEqual({ state: 'terminated', reason: 'terminated' });
    expect(torn).toEqual(['terminated']);
    expect(seen).toEqual(['terminated:terminated']);
    expect(state.paused).toBe(false);
    expect(await state.poll()).toEqual({ state: 'terminated', reason: 'terminated' });
    expect(() => state.assertRunning()).toThrow(SandboxNotFoundError);
    await expect(state.pause(async () => undefined)).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
    await expect(state.resume(async () => undefined)).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
  });

  it('a sandbox that ends during its freeze rejects the pause with SandboxNotFoundError', async () => {
    const { state } = lifecycle();
    const pausing = state.pause(async () => {
      await state.end({ state: 'terminated', reason: 'crashed' });
      throw new Error('the container is gone');
    });
    await expect(pausing).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
  });

  it('pause and resume reject with signal.reason when aborted', async () => {
    const { state } = lifecycle();
    const reason = new Error('aborted');
    await expect(state.pause(async () => undefined, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(await state.poll()).toEqual({ state: 'running' });
    const controller = new AbortController();
    const pausing = state.pause(async () => void (await tick(30)), { signal: controller.signal });
    controller.abort(reason);
    await expect(pausing).rejects.toBe(reason);
    // The freeze under way completes: the sandbox ends up paused, and a resume thaws it.
    await state.resume(async () => undefined);
    expect(await state.poll()).toEqual({ state: 'running' });
  });

  it('adoptPaused marks a sandbox found paused, keeping the lifetime given for the resume', async () => {
    const { state } = lifecycle();
    state.adoptPaused(25);
    expect(await state.poll()).toEqual({ state: 'paused' });
    expect(state.remainingLifetimeMs).toBe(25);
    await state.resume(async () => undefined);
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'lifetime-timeout' });
  });

  it('adoptRunning takes a sandbox resumed elsewhere back to running, releasing work waiting for it', async () => {
    const { state } = lifecycle();
    state.adoptPaused(25);
    const running = state.whenRunning();
    state.adoptRunning();
    await running;
    expect(await state.poll()).toEqual({ state: 'running' });
    expect(await state.wait()).toEqual({ state: 'terminated', reason: 'lifetime-timeout' });
  });
});

describe('ProcessOutcome', () => {
  const outcome = (state: SandboxLifecycle, events: SandboxEmitter, options: { timeoutMs?: number; signal?: AbortSignal } = {}) => {
    const kills: string[] = [];
    const value = new ProcessOutcome({
      provider: 'test',
      sandboxId: 'sb-1',
      events,
      command: ['true'],
      lifecycle: state,
      kill: async (signal) => void kills.push(signal),
      ...options,
    });
    return { value, kills };
  };

  it('emits exec-start and exec-end exactly once, and wait gives the exit', async () => {
    const { state, events, seen } = lifecycle();
    const { value } = outcome(state, events);
    value.started();
    value.started();
    value.exited({ exitCode: 3, signal: undefined });
    value.exited({ exitCode: 4, signal: undefined });
    expect(await value.wait()).toEqual({ exitCode: 3, signal: undefined });
    expect(seen).toEqual([`start:${value.execId}`, `end:${value.execId}:3`]);
  });

  it('an exec timeout kills the tree and wait rejects with SandboxTimeoutError', async () => {
    const { state, events } = lifecycle();
    const { value, kills } = outcome(state, events, { timeoutMs: 20 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(kills).toEqual(['SIGKILL']);
    value.exited({ exitCode: 137, signal: 'SIGKILL' });
    await expect(value.wait()).rejects.toSatisfy((error) => SandboxTimeoutError.isInstance(error));
  });

  it('an abort during startup rejects with signal.reason and kills what started', async () => {
    const { state, events, seen } = lifecycle();
    const controller = new AbortController();
    const { value, kills } = outcome(state, events, { signal: controller.signal });
    const reason = new Error('abort early');
    const starting = new Promise<string>((resolve) => setTimeout(() => resolve('process'), 50));
    const started = value.startup(starting);
    controller.abort(reason);
    await expect(started).rejects.toBe(reason);
    expect(kills).toEqual(['SIGKILL']);
    expect(seen).toEqual([]);
    expect(state.running).toBe(0);
  });

  it('kill validates the signal and is a no-op after the exit', async () => {
    const { state, events } = lifecycle();
    const { value, kills } = outcome(state, events);
    for (const bad of ['SIGFOO', '', 'sigterm', 'KILL', 9, {}]) {
      await expect(value.kill(bad)).rejects.toSatisfy((error) => SandboxInvalidArgumentError.isInstance(error));
    }
    await value.kill('SIGTERM');
    value.exited({ exitCode: 143, signal: 'SIGTERM' });
    await value.kill('SIGKILL');
    expect(kills).toEqual(['SIGTERM']);
  });

  it('kill while paused is SandboxPausedError; a timeout that runs out while paused kills at the resume', async () => {
    const { state, events } = lifecycle();
    const { value, kills } = outcome(state, events, { timeoutMs: 20 });
    value.started();
    await state.pause(async () => undefined);
    await expect(value.kill('SIGTERM')).rejects.toSatisfy((error) => SandboxPausedError.isInstance(error));
    await tick(60);
    // The timeout ran out, but a paused sandbox runs no kill.
    expect(kills).toEqual([]);
    await state.resume(async () => undefined);
    await tick(0);
    expect(kills).toEqual(['SIGKILL']);
    value.exited({ exitCode: 137, signal: 'SIGKILL' });
    await expect(value.wait()).rejects.toSatisfy((error) => SandboxTimeoutError.isInstance(error));
  });

  it('a running command fails with SandboxNotFoundError when the sandbox ends', async () => {
    const { state, events } = lifecycle();
    const { value } = outcome(state, events);
    value.started();
    await state.end({ state: 'terminated', reason: 'lifetime-timeout' });
    value.exited({ exitCode: 137, signal: 'SIGKILL' });
    await expect(value.wait()).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
  });
});

describe('setLongTimeout', () => {
  it('fires after short delays and can be cleared', async () => {
    let fired = 0;
    setLongTimeout(() => fired++, 10, { ref: true });
    const cleared = setLongTimeout(() => fired++, 10, { ref: true });
    cleared.clear();
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(fired).toBe(1);
  });
});
