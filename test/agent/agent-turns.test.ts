/** The turn state machine of AgentSession, without a CLI: queueing, aborts, timeouts, close, a dead process. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TurnQueue, type ActiveTurn, type TurnQueueOptions } from '../../src/agent/agent-turns.js';
import { SandboxTimeoutError } from '../../src/index.js';

interface Result {
  text: string;
}

const timeoutMs = 60_000;
const graceMs = 5_000;

/** A queue whose CLI is a log: what started, and every interrupt and kill. */
function setup(options: Partial<TurnQueueOptions<string, string>> = {}) {
  const started: Array<ActiveTurn<string, string>> = [];
  const calls: string[] = [];
  const turns = new TurnQueue<string, string, Result>({
    defaultTimeoutMs: timeoutMs,
    interruptGraceMs: graceMs,
    provider: 'test',
    start: (turn) => {
      started.push(turn);
      calls.push(`start ${turn.index} ${turn.prompt}`);
    },
    interrupt: () => calls.push('interrupt'),
    kill: () => calls.push('kill'),
    ...options,
  });
  return { turns, started, calls };
}

/** Whether a promise has settled, after the microtasks queued so far ran. */
async function state(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let seen: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => (seen = 'resolved'),
    () => (seen = 'rejected'),
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  return seen;
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const seen: string[] = [];
  for await (const item of iterable) seen.push(item);
  return seen;
}

describe('TurnQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs one turn at a time: a send during a turn waits, and starts when the turn completes', async () => {
    const { turns, started, calls } = setup();
    const one = turns.enqueue('one');
    const two = turns.enqueue('two');
    expect(calls).toEqual(['start 1 one']);
    expect(turns.active).toBe(started[0]);
    turns.complete(started[0]!, { text: 'first' });
    expect(calls).toEqual(['start 1 one', 'start 2 two']);
    turns.complete(started[1]!, { text: 'second' });
    expect(await one.result).toEqual({ text: 'first' });
    expect(await two.result).toEqual({ text: 'second' });
    expect(turns.active).toBeUndefined();
    expect(turns.count).toBe(2);
  });

  it('counts turns on from a resumed session’s count', () => {
    const { turns, started } = setup({ turns: 7 });
    turns.enqueue('again');
    expect(started[0]!.index).toBe(8);
    expect(turns.count).toBe(8);
  });

  it('hands pushed messages to the turn’s iteration, which ends with the result', async () => {
    const { turns, started } = setup();
    const turn = turns.enqueue('one');
    started[0]!.push('system');
    started[0]!.push('assistant');
    const messages = collect(turn);
    started[0]!.push('result');
    turns.complete(started[0]!, { text: 'done' });
    expect(await messages).toEqual(['system', 'assistant', 'result']);
    // Iterating late loses nothing: messages are buffered.
    const late = turns.enqueue('two');
    started[1]!.push('result');
    turns.complete(started[1]!, { text: 'done' });
    expect(await collect(late)).toEqual(['result']);
  });

  it('leaves `saved` to the session: pending after the result until savedResolve', async () => {
    const { turns, started } = setup();
    const turn = turns.enqueue('one');
    turns.complete(started[0]!, { text: 'done' });
    expect(await state(turn.saved)).toBe('pending');
    started[0]!.savedResolve();
    expect(await state(turn.saved)).toBe('resolved');
    const failed = turns.enqueue('two');
    const error = new Error('store down');
    started[1]!.savedReject(error);
    turns.complete(started[1]!, { text: 'done' });
    await expect(failed.saved).rejects.toBe(error);
  });

  it('rejects a waiting turn at once when its signal aborts; it never starts and takes no turn number', async () => {
    const { turns, started, calls } = setup();
    const running = turns.enqueue('running');
    const controller = new AbortController();
    const queued = turns.enqueue('queued', { signal: controller.signal });
    const after = turns.enqueue('after');
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(queued.result).rejects.toBe(reason);
    await expect(collect(queued)).rejects.toBe(reason);
    // The running turn is not disturbed: no interrupt.
    expect(calls).toEqual(['start 1 running']);
    turns.complete(started[0]!, { text: 'ran' });
    expect(await running.result).toEqual({ text: 'ran' });
    expect(calls).toEqual(['start 1 running', 'start 2 after']);
    turns.complete(started[1]!, { text: 'after' });
    expect(await after.result).toEqual({ text: 'after' });
    await expect(queued.saved).resolves.toBeUndefined();
  });

  it('rejects a send whose signal already aborted without starting it', async () => {
    const { turns, calls } = setup();
    const reason = new Error('too late');
    const turn = turns.enqueue('never', { signal: AbortSignal.abort(reason) });
    await expect(turn.result).rejects.toBe(reason);
    expect(calls).toEqual([]);
    expect(turns.count).toBe(0);
  });

  it('rejects a refused send (closed session, bad prompt) without starting it', async () => {
    const { turns, calls } = setup();
    const refusal = new Error('closed');
    await expect(turns.enqueue('never', { refusal }).result).rejects.toBe(refusal);
    expect(calls).toEqual([]);
  });

  it('on a running turn’s abort: tells the caller at once, interrupts the CLI, and holds the slot until the CLI ends the turn', async () => {
    const { turns, started, calls } = setup();
    const controller = new AbortController();
    const turn = turns.enqueue('long', { signal: controller.signal });
    const next = turns.enqueue('next');
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(turn.result).rejects.toBe(reason);
    expect(calls).toEqual(['start 1 long', 'interrupt']);
    expect(turns.active).toBe(started[0]);
    // The CLI ends the turn normally after the interrupt: the caller keeps the abort reason.
    turns.complete(started[0]!, { text: 'interrupted' });
    await expect(turn.result).rejects.toBe(reason);
    expect(calls).toEqual(['start 1 long', 'interrupt', 'start 2 next']);
    vi.advanceTimersByTime(graceMs);
    expect(calls).not.toContain('kill');
    turns.complete(started[1]!, { text: 'ok' });
    expect(await next.result).toEqual({ text: 'ok' });
  });

  it('kills the CLI when it does not end an abandoned turn within the grace, once', async () => {
    const { turns, calls } = setup();
    const controller = new AbortController();
    const turn = turns.enqueue('stuck', { signal: controller.signal });
    controller.abort(new Error('stop'));
    await expect(turn.result).rejects.toThrow('stop');
    vi.advanceTimersByTime(timeoutMs);
    expect(calls.filter((call) => call === 'kill')).toEqual(['kill']);
  });

  it('times a turn out with SandboxTimeoutError; a send’s timeoutMs overrides the default', async () => {
    const { turns, started, calls } = setup();
    const turn = turns.enqueue('slow', { timeoutMs: 1_500 });
    vi.advanceTimersByTime(1_499);
    expect(await state(turn.result)).toBe('pending');
    vi.advanceTimersByTime(1);
    const error = await turn.result.catch((caught: unknown) => caught);
    expect(SandboxTimeoutError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ timeoutMs: 1_500, operation: 'agent-turn', provider: 'test' });
    expect(calls).toEqual(['start 1 slow', 'interrupt']);
    turns.complete(started[0]!, { text: 'late' });
    const next = turns.enqueue('next');
    vi.advanceTimersByTime(timeoutMs - 1);
    expect(await state(next.result)).toBe('pending');
    vi.advanceTimersByTime(1);
    await expect(next.result).rejects.toMatchObject({ timeoutMs });
  });

  it('forgets a finished turn’s signal and timer: a later abort or deadline does nothing', async () => {
    const { turns, started, calls } = setup();
    const controller = new AbortController();
    const turn = turns.enqueue('quick', { signal: controller.signal });
    turns.complete(started[0]!, { text: 'quick' });
    controller.abort(new Error('after the fact'));
    vi.advanceTimersByTime(timeoutMs * 2);
    expect(await turn.result).toEqual({ text: 'quick' });
    expect(calls).toEqual(['start 1 quick']);
  });

  it('on close: waiting turns reject at once; the running one may still finish, or is rejected', async () => {
    const { turns, started } = setup();
    const finishing = turns.enqueue('finishing');
    const waiting = turns.enqueue('waiting');
    const closed = new Error('closed');
    turns.cancelWaiting(closed);
    await expect(waiting.result).rejects.toBe(closed);
    turns.complete(started[0]!, { text: 'made it' });
    expect(await finishing.result).toEqual({ text: 'made it' });
    expect(started).toHaveLength(1);

    const cut = turns.enqueue('cut short');
    turns.cancelActive(closed);
    await expect(cut.result).rejects.toBe(closed);
    turns.cancelActive(new Error('again'));
    await expect(cut.result).rejects.toBe(closed);
  });

  it('when the CLI dies: rejects the running and waiting turns and every later send with the error', async () => {
    const { turns, calls } = setup();
    const running = turns.enqueue('running');
    const waiting = turns.enqueue('waiting');
    const died = new Error('process exited');
    turns.halt(died);
    await expect(running.result).rejects.toBe(died);
    await expect(waiting.result).rejects.toBe(died);
    await expect(collect(running)).rejects.toBe(died);
    await expect(running.saved).resolves.toBeUndefined();
    await expect(turns.enqueue('later').result).rejects.toBe(died);
    expect(turns.active).toBeUndefined();
    expect(calls).toEqual(['start 1 running']);
  });

  it('when the CLI dies under an abandoned turn, its caller keeps the first reason', async () => {
    const { turns } = setup();
    const turn = turns.enqueue('slow', { timeoutMs: 10 });
    vi.advanceTimersByTime(10);
    turns.halt(new Error('killed'));
    expect(SandboxTimeoutError.isInstance(await turn.result.catch((caught: unknown) => caught))).toBe(true);
  });
});
