import { describe, expect, it } from 'vitest';
import { PushedFileWatch, SandboxProviderError } from '../../src/kit/index.js';

const make = (options: { signal?: AbortSignal; maxQueued?: number } = {}) => {
  const stops: number[] = [];
  const aborts: unknown[] = [];
  const watch = new PushedFileWatch({
    provider: 'test',
    path: '/w',
    signal: options.signal,
    maxQueued: options.maxQueued,
    stop: () => stops.push(1),
    onAbort: (reason) => aborts.push(reason),
  });
  return { watch, stops, aborts };
};

describe('PushedFileWatch', () => {
  it('hands events over in order, to a waiting next() or from the queue, and ends once', async () => {
    const { watch, stops } = make();
    const iterator = watch[Symbol.asyncIterator]();
    const waiting = iterator.next();
    watch.deliver({ type: 'create', path: '/w/a' });
    watch.deliver({ type: 'modify', path: '/w/a' });
    expect(await waiting).toEqual({ done: false, value: { type: 'create', path: '/w/a' } });
    watch.finish({ done: true });
    watch.finish({ error: new Error('ignored') });
    // Events queued before the end stay readable; pushes after it are ignored.
    watch.deliver({ type: 'remove', path: '/w/a' });
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'modify', path: '/w/a' } });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    expect(stops).toEqual([1]);
  });

  it('a consumer that falls past the bound gets a SandboxProviderError, never a silent gap', async () => {
    const { watch, stops } = make({ maxQueued: 2 });
    for (const name of ['a', 'b', 'c']) watch.deliver({ type: 'create', path: `/w/${name}` });
    const iterator = watch[Symbol.asyncIterator]();
    await iterator.next();
    await iterator.next();
    const error = await iterator.next().catch((caught: unknown) => caught);
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('fell behind');
    expect(stops).toEqual([1]);
  });

  it('an abort rejects the pending next() with signal.reason and stops the watcher', async () => {
    const controller = new AbortController();
    const { watch, stops, aborts } = make({ signal: controller.signal });
    const pending = watch[Symbol.asyncIterator]().next();
    const reason = new Error('stop watching');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(aborts).toEqual([reason]);
    expect(stops).toEqual([1]);
  });

  it('break out of for await closes it: queued events are dropped and the watcher stopped', async () => {
    const { watch, stops } = make();
    watch.deliver({ type: 'create', path: '/w/a' });
    watch.deliver({ type: 'create', path: '/w/b' });
    for await (const event of watch) {
      expect(event.path).toBe('/w/a');
      break;
    }
    expect(stops).toEqual([1]);
    expect(await watch[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
  });
});
