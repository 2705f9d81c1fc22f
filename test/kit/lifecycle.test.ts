import { describe, expect, it } from 'vitest';
import {
  ProcessOutcome,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
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
