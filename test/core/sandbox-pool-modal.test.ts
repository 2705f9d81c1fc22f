/**
 * Warm pools on a cloud provider: createSandboxPool over the Modal adapter (the real `modal` SDK)
 * against the Modal emulator in a child process, whose sandboxes are local bubblewrap ones. The
 * same behaviours as sandbox-pool.test.ts, where a round trip sits between the pool and each
 * sandbox. Every sandbox carries this file's tag, so `provider.list` shows what is left running.
 */
import { ModalClient } from 'modal';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createModalSandboxProvider } from '../../adapters/modal/index.js';
import { SandboxProviderError } from '../../src/errors/index.js';
import {
  createSandboxPool,
  SandboxPoolClosedError,
  type SandboxPool,
  type SandboxPoolEvents,
  type SandboxPoolOptions,
} from '../../src/pool/index.js';
import type { SandboxProvider } from '../../src/spec/sandbox.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from '../emulators/modal/spawn.js';

const tags = { suite: 'sandbox-pool-modal' };
const waitOptions = { timeout: 60_000, interval: 50 };

let emulator: ModalEmulatorProcess | undefined;
let client: ModalClient | undefined;
let provider: SandboxProvider;
const pools: SandboxPool[] = [];
const handedOut: Array<{ terminate(): Promise<void> }> = [];

beforeAll(async () => {
  emulator = await spawnModalEmulator();
  // The SDK reads its server URL from the environment when a client is made.
  process.env.MODAL_SERVER_URL = emulator.url;
  client = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
  provider = createModalSandboxProvider({ client, appName: 'sandport-pool-tests', encryptPortsByDefault: false });
}, 120_000);

afterAll(async () => {
  client?.close();
  await emulator?.close();
}, 120_000);

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await Promise.all(handedOut.splice(0).map((sandbox) => sandbox.terminate()));
  expect(await running()).toEqual([]);
}, 60_000);

/** Ids of this file's sandboxes that the emulator still runs. */
async function running(): Promise<string[]> {
  return (await provider.list!({ tags })).map((info) => info.id);
}

function open(options: Omit<SandboxPoolOptions, 'createOptions'> & { createOptions?: SandboxPoolOptions['createOptions'] }): SandboxPool {
  const pool = createSandboxPool(provider, { ...options, createOptions: { ...options.createOptions, tags } });
  pools.push(pool);
  return pool;
}

async function acquire(pool: SandboxPool, options?: { signal?: AbortSignal }) {
  const sandbox = await pool.acquire(options);
  handedOut.push(sandbox);
  return sandbox;
}

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

describe('createSandboxPool on the Modal adapter (emulator)', () => {
  it('acquires from a warm pool started from a snapshot, replenishes, and never hands one out twice', async () => {
    // The expensive preparation once, then every pooled sandbox starts from its snapshot.
    const template = await provider.create({ tags });
    await template.files.write('/opt/prepared.txt', 'cloned and installed\n');
    const image = await template.snapshot!();
    await template.terminate();

    const pool = open({ size: 2, concurrency: 2, createOptions: { image } });
    const acquired: Array<SandboxPoolEvents['acquired'][0]> = [];
    pool.events.on('acquired', (event) => acquired.push(event));
    await pool.waitUntilWarm();
    const sandboxes = await Promise.all(Array.from({ length: 4 }, () => acquire(pool)));
    expect(new Set(sandboxes.map((sandbox) => sandbox.id)).size).toBe(4);
    expect(acquired.filter((event) => event.warm)).toHaveLength(2);
    for (const sandbox of sandboxes) expect(await sandbox.files.readText('/opt/prepared.txt')).toBe('cloned and installed\n');

    await pool.waitUntilWarm();
    expect(pool.stats().ready).toBe(2);
    const ids = sandboxes.map((sandbox) => sandbox.id);
    expect((await running()).filter((id) => !ids.includes(id))).toHaveLength(2);
  });

  it('creates one for the call when the pool is cold', async () => {
    const pool = open({ size: 0, prepare: (sandbox) => sandbox.files.write('/tmp/ready', 'yes') });
    const sandbox = await acquire(pool);
    expect(await sandbox.files.readText('/tmp/ready')).toBe('yes');
    expect(pool.stats()).toMatchObject({ ready: 0, creating: 0 });
  });

  it('retires sandboxes past maxIdleMs and maxAgeMs, terminating them on the provider', async () => {
    const idle = open({ size: 1, maxIdleMs: 300 });
    const aged = open({ size: 1, maxAgeMs: 400 });
    const [idleRetired, agedRetired] = await Promise.all([nextEvent(idle, 'retired'), nextEvent(aged, 'retired')]);
    expect(idleRetired.reason).toBe('max-idle');
    expect(agedRetired.reason).toBe('max-age');
    await vi.waitFor(async () => {
      const left = await running();
      expect(left).not.toContain(idleRetired.sandboxId);
      expect(left).not.toContain(agedRetired.sandboxId);
    }, waitOptions);
  });

  it('retires a sandbox that fails its health check and hands over the next one', async () => {
    const checked: string[] = [];
    const pool = open({
      size: 2,
      healthCheck: async (sandbox, { signal }) => {
        checked.push(sandbox.id);
        return checked.length > 1 && (await sandbox.run(['true'], { signal })).exitCode === 0;
      },
    });
    const retired = nextEvent(pool, 'retired');
    await pool.waitUntilWarm();
    const sandbox = await acquire(pool);
    expect(sandbox.id).toBe(checked[1]);
    expect(await retired).toEqual({ provider: 'modal', sandboxId: checked[0], reason: 'unhealthy' });
    await vi.waitFor(async () => expect(await running()).not.toContain(checked[0]), waitOptions);
  });

  it('reports a failed prepare, terminates that sandbox, and fills the pool on a later attempt', async () => {
    let attempts = 0;
    const pool = open({
      size: 1,
      concurrency: 1,
      retryDelayMs: 50,
      prepare: async (sandbox, { signal }) => {
        attempts++;
        // The first attempt runs a command that fails, as a broken install would.
        const result = await sandbox.run(['sh', '-c', attempts === 1 ? 'exit 7' : 'true'], { signal });
        if (result.exitCode !== 0) throw new Error(`install exited ${result.exitCode}`);
      },
    });
    const error = await nextEvent(pool, 'error');
    expect(error).toMatchObject({ operation: 'prepare', attempt: 1, error: new Error('install exited 7') });
    await pool.waitUntilWarm();
    expect(attempts).toBe(2);
    await vi.waitFor(async () => expect(await running()).not.toContain(error.sandboxId), waitOptions);
  });

  it('backs off after failed creations and reports each one', async () => {
    const pool = open({
      size: 1,
      concurrency: 1,
      retryDelayMs: 20,
      maxRetryDelayMs: 80,
      createOptions: { image: { base: 'debian:bookworm', commands: ['exit 3'] } },
    });
    const errors: Array<SandboxPoolEvents['error'][0]> = [];
    await new Promise<void>((resolve) =>
      pool.events.on('error', (event) => {
        errors.push(event);
        if (errors.length === 3) resolve();
      }),
    );
    expect(errors.map((event) => [event.operation, event.attempt])).toEqual([
      ['create', 1],
      ['create', 2],
      ['create', 3],
    ]);
    expect(SandboxProviderError.isInstance(errors[0]!.error)).toBe(true);
    expect(errors.map((event) => event.retryInMs! <= [20, 40, 80][errors.indexOf(event)]!)).toEqual([true, true, true]);
    expect(pool.stats()).toMatchObject({ ready: 0, consecutiveFailures: 3 });
  });

  it('rejects an aborted cold acquire with signal.reason and leaves nothing running', async () => {
    const pool = open({
      size: 0,
      prepare: (_sandbox, { signal }) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
    });
    const controller = new AbortController();
    const reason = new Error('request cancelled');
    const acquiring = pool.acquire({ signal: controller.signal });
    const created = await nextEvent(pool, 'created');
    controller.abort(reason);
    await expect(acquiring).rejects.toBe(reason);
    await vi.waitFor(async () => expect(await running()).not.toContain(created.sandboxId), waitOptions);
  });

  it('never hands out a sandbox that ended while it waited', async () => {
    const pool = open({ size: 1, concurrency: 1 });
    await pool.waitUntilWarm();
    const [waiting] = await running();
    const retired = nextEvent(pool, 'retired');
    // Someone else ends it: another handle of the same provider, as an operator's script would.
    await (await provider.fromId(waiting!)).terminate();
    expect(await retired).toEqual({ provider: 'modal', sandboxId: waiting, reason: 'ended' });
    expect((await acquire(pool)).id).not.toBe(waiting);
  });

  it('close terminates every sandbox it holds, keeps the handed-out one, and refuses later acquires', async () => {
    const pool = createSandboxPool(provider, { size: 3, concurrency: 3, createOptions: { tags } });
    await pool.waitUntilWarm();
    const kept = await pool.acquire();
    handedOut.push(kept);
    expect((await running()).length).toBeGreaterThanOrEqual(3);
    await pool.close();
    await pool.close();
    await expect(pool.acquire()).rejects.toSatisfy(SandboxPoolClosedError.isInstance);
    expect(await running()).toEqual([kept.id]);
    expect((await kept.run(['echo', 'mine'])).stdout).toBe('mine\n');
  });
});
