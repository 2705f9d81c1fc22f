import { describe, expect, it } from 'vitest';
import { SandboxAlreadyExistsError, type Sandbox } from '../../../src/kit/index.js';
import { SandboxRegistry, type SandboxEnd } from './sandbox-registry.js';

/** Enough of a local sandbox for the registry: it ends when terminated. */
class FakeSandbox {
  terminated = false;
  private end!: (status: SandboxEnd) => void;
  private readonly ended = new Promise<SandboxEnd>((resolve) => (this.end = resolve));
  wait(): Promise<SandboxEnd> {
    return this.ended;
  }
  async terminate(): Promise<void> {
    this.terminated = true;
    this.end({ state: 'terminated', reason: 'terminated' });
  }
}

function registry() {
  const made: FakeSandbox[] = [];
  let release: (() => void) | undefined;
  const backend = {
    gate: undefined as Promise<void> | undefined,
    async create() {
      if (backend.gate) await backend.gate;
      const sandbox = new FakeSandbox();
      made.push(sandbox);
      return sandbox as unknown as Sandbox;
    },
  };
  const hold = () => (backend.gate = new Promise<void>((resolve) => (release = resolve)));
  let next = 0;
  const sandboxes = new SandboxRegistry(backend, { newId: () => `sb-${++next}`, scopeNoun: 'app' });
  return { sandboxes, made, hold, release: () => release?.() };
}

const data = () => undefined;

describe('SandboxRegistry', () => {
  it('lists by tags: a sandbox matches only when it carries every asked tag with its value', async () => {
    const { sandboxes } = registry();
    const web = await sandboxes.create({}, { tags: { role: 'web', env: 'prod' }, data });
    const worker = await sandboxes.create({}, { tags: { role: 'worker', env: 'prod' }, data });
    await sandboxes.create({}, { tags: { role: 'web', env: 'dev' }, data });
    expect(sandboxes.list({ tags: { env: 'prod' } }).map((entry) => entry.id)).toEqual([worker.id, web.id]);
    expect(sandboxes.list({ tags: { role: 'web', env: 'prod' } }).map((entry) => entry.id)).toEqual([web.id]);
    expect(sandboxes.list({ tags: { role: 'db' } })).toEqual([]);
    web.tags = { role: 'db' };
    expect(sandboxes.list({ tags: { role: 'db' } }).map((entry) => entry.id)).toEqual([web.id]);
  });

  it('lists newest first with strictly increasing creation times, running ones unless asked', async () => {
    const { sandboxes } = registry();
    const entries = [];
    for (let index = 0; index < 5; index++) entries.push(await sandboxes.create({}, { data }));
    const times = entries.map((entry) => entry.createdAt);
    expect(times.every((time, index) => index === 0 || time > times[index - 1]!)).toBe(true);
    await entries[2]!.local.terminate();
    await entries[2]!.ended;
    expect(entries[2]!.end?.reason).toBe('terminated');
    expect(sandboxes.list().map((entry) => entry.id)).toEqual(['sb-5', 'sb-4', 'sb-2', 'sb-1']);
    expect(sandboxes.list({ includeEnded: true })).toHaveLength(5);
  });

  it('keeps names unique among running sandboxes of a scope, and frees a name when its sandbox ends', async () => {
    const { sandboxes, made } = registry();
    const first = await sandboxes.create({}, { scope: 'app-1', name: 'db', data });
    await expect(sandboxes.create({}, { scope: 'app-1', name: 'db', data })).rejects.toSatisfy(
      (error) => SandboxAlreadyExistsError.isInstance(error) && /named "db" already exists in the app/.test((error as Error).message),
    );
    expect(made).toHaveLength(1); // refused before any sandbox started
    const other = await sandboxes.create({}, { scope: 'app-2', name: 'db', data });
    expect(sandboxes.findByName('db', { scope: 'app-1' })?.id).toBe(first.id);
    expect(sandboxes.findByName('db', { scope: 'app-2' })?.id).toBe(other.id);
    await first.local.terminate();
    await first.ended;
    expect(sandboxes.findByName('db', { scope: 'app-1' })).toBeUndefined();
    const second = await sandboxes.create({}, { scope: 'app-1', name: 'db', data });
    expect(sandboxes.findByName('db', { scope: 'app-1' })?.id).toBe(second.id);
    expect(sandboxes.findByName('db', { scope: 'app-1', includeEnded: true })?.id).toBe(second.id);
  });

  it('refuses a second create of a name while the first is still starting', async () => {
    const { sandboxes, hold, release, made } = registry();
    hold();
    const first = sandboxes.create({}, { name: 'only', data });
    await expect(sandboxes.create({}, { name: 'only', data })).rejects.toSatisfy(SandboxAlreadyExistsError.isInstance);
    release();
    expect((await first).name).toBe('only');
    expect(made).toHaveLength(1);
  });

  it('terminates the sandbox when building its data fails, and registers nothing', async () => {
    const { sandboxes, made } = registry();
    await expect(
      sandboxes.create(
        {},
        {
          name: 'broken',
          data: () => {
            throw new Error('no tunnels');
          },
        },
      ),
    ).rejects.toThrow('no tunnels');
    expect(made[0]?.terminated).toBe(true);
    expect(sandboxes.all()).toEqual([]);
    expect((await sandboxes.create({}, { name: 'broken', data })).name).toBe('broken');
  });

  it('terminateAll ends every sandbox', async () => {
    const { sandboxes, made } = registry();
    await sandboxes.create({}, { data });
    await sandboxes.create({}, { data });
    await sandboxes.terminateAll();
    expect(made.map((sandbox) => sandbox.terminated)).toEqual([true, true]);
  });
});
