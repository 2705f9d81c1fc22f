/**
 * Warm pools on every other provider: one compact createSandboxPool scenario on Docker (the
 * engine) and on E2B, Daytona, Vercel, Fly, the Cloudflare bridge (0.13) and Kubernetes (each
 * emulator in a child process). sandbox-pool.test.ts covers the pool's rules on local and
 * sandbox-pool-modal.test.ts on Modal; this file proves that the pool keeps them where only the
 * provider differs: its create and terminate round trips, its `wait()` (the pool's end watch),
 * its ids and its not-found answers.
 *
 * The steps share one pool per provider, in order, because each needs what the one before left:
 * 1. warm: `size` sandboxes created and prepared in the background; two `acquire`s hand over the
 *    two prepared ones at once (never the same one twice), a third past capacity is created for
 *    its call, and the pool refills in the background;
 * 2. unhealthy: a ready sandbox failing `healthCheck` is retired and terminated on the provider,
 *    and the acquire gets the next one;
 * 3. ended: a ready sandbox terminated through a second provider object (no event of the pool's
 *    provider says so) is noticed by the pool's `wait()` on it, retired, and never handed out;
 * 4. close: what the pool holds is terminated, what it handed out keeps running, and `acquire`
 *    is refused with `SandboxPoolClosedError`.
 * Where the provider has snapshots, the pool's sandboxes start from one of a prepared template
 * (the pattern a real pool would use); where it has tags, every sandbox carries this file's, so
 * `list` shows what is left running (and a failed run leaves findable leftovers).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { SandboxNotFoundError } from '../../src/errors/index.js';
import { createSandboxPool, SandboxPoolClosedError, type SandboxPool, type SandboxPoolEvents } from '../../src/pool/index.js';
import type { CreateSandboxOptions, SandboxSnapshotRef } from '../../src/spec/options.js';
import type { Sandbox, SandboxProvider } from '../../src/spec/sandbox.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import {
  connectCloudflareBridge,
  connectDaytona,
  connectE2b,
  connectFly,
  connectKubernetes,
  connectVercel,
  type EmulatedProvider,
  vercelSkipReason,
} from '../emulated-providers.js';

/**
 * `suite` finds this file's leftovers; `run` keeps this run's counts apart from those of a run
 * that was killed half-way (the Docker engine keeps its containers across runs).
 */
const tags = { suite: 'sandbox-pool-providers', run: `${process.pid}-${Date.now()}` };
const waitOptions = { timeout: 60_000, interval: 100 };
/** What `prepare` writes: in /tmp, which every provider's default user may write. */
const preparedPath = '/tmp/pool-prepared.txt';
/** What the snapshot's template holds, where the pool starts from a snapshot. */
const templatePath = '/tmp/pool-template.txt';

/** One provider: how to reach it, and what its sandboxes are created with. */
interface Target {
  readonly name: string;
  /** The pool's sandboxes start from a snapshot of a prepared template (the provider has snapshots). */
  readonly fromSnapshot: boolean;
  /** Why it cannot run here (evaluated at collection), or `undefined`. */
  skipReason(): string | undefined;
  start(): Promise<{
    provider: SandboxProvider;
    /** A second provider object of the same account, as an operator's script would hold. */
    another: SandboxProvider;
    createOptions: CreateSandboxOptions;
    close(): Promise<void>;
  }>;
}

/** Modest lifetimes, so that a run killed half-way leaves nothing running for long. */
const lifetime: CreateSandboxOptions = { timeoutMs: 10 * 60_000 };

/** A connection's two provider objects, and what this file creates the pool's sandboxes with. */
function on(connection: EmulatedProvider, createOptions: CreateSandboxOptions) {
  return { provider: connection.make(), another: connection.make(), createOptions, close: () => connection.close() };
}

const targets: Target[] = [
  {
    name: 'docker (engine)',
    fromSnapshot: true,
    skipReason: () => (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)'),
    start: async () => ({
      provider: createDockerSandboxProvider(),
      another: createDockerSandboxProvider(),
      createOptions: { ...lifetime, image: baseImage, network: 'block' },
      close: async () => undefined,
    }),
  },
  {
    name: 'e2b emulator',
    fromSnapshot: true,
    skipReason: () => undefined,
    start: async () => on(await connectE2b(), { ...lifetime, network: 'block' }),
  },
  {
    name: 'daytona emulator',
    fromSnapshot: true,
    skipReason: () => undefined,
    start: async () => on(await connectDaytona(), { ...lifetime, network: 'block' }),
  },
  {
    name: 'vercel emulator',
    fromSnapshot: true,
    skipReason: vercelSkipReason,
    start: async () => on(await connectVercel(), { ...lifetime, network: 'block' }),
  },
  {
    name: 'fly emulator',
    fromSnapshot: false,
    skipReason: () => undefined,
    // The adapter's default image, which the emulator knows (as the conformance suite creates).
    start: async () => on(await connectFly(), lifetime),
  },
  {
    name: 'cloudflare bridge emulator 0.13',
    fromSnapshot: false,
    skipReason: () => undefined,
    // Network and lifetime are the Worker's (wrangler.jsonc), not the create's; no tags either.
    start: async () => on(await connectCloudflareBridge({ version: '0.13' }), {}),
  },
  {
    name: 'kubernetes emulator',
    fromSnapshot: false,
    skipReason: () => undefined,
    start: async () => on(await connectKubernetes(), lifetime),
  },
];

/** Every event of a pool, in order, by name. */
type Recorded = { [Name in keyof SandboxPoolEvents]: Array<SandboxPoolEvents[Name][0]> };

function record(pool: SandboxPool): Recorded {
  const recorded: Recorded = { created: [], prepared: [], ready: [], acquired: [], retired: [], error: [], closed: [] };
  for (const name of Object.keys(recorded) as Array<keyof Recorded>) {
    pool.events.on(name, ((event: unknown) => (recorded[name] as unknown[]).push(event)) as never);
  }
  return recorded;
}

/** Rejects unless the provider no longer finds the sandbox. */
async function expectGone(provider: SandboxProvider, id: string): Promise<void> {
  const error = await provider.fromId(id).then(
    () => new Error(`${id} is still found`),
    (caught: unknown) => caught,
  );
  expect(SandboxNotFoundError.isInstance(error), String(error)).toBe(true);
}

for (const target of targets) {
  const skip = target.skipReason();
  describe.skipIf(skip !== undefined)(
    `createSandboxPool on ${target.name}${target.fromSnapshot ? ', from a snapshot' : ''}${skip ? ` (skipped: ${skip})` : ''}`,
    () => {
      let started: Awaited<ReturnType<Target['start']>>;
      let provider: SandboxProvider;
      let pool: SandboxPool;
      let events: Recorded;
      let snapshot: SandboxSnapshotRef | undefined;
      const handedOut: Sandbox[] = [];
      /** Ids the health check fails. */
      const condemned = new Set<string>();

      /** This file's sandboxes the provider still runs, where it can list by tag. */
      const running = async (): Promise<string[] | undefined> =>
        provider.capabilities.list && provider.capabilities.tags
          ? (await provider.list!({ tags })).map((info) => info.id).sort()
          : undefined;

      /** What the pool holds ready now, oldest first, from its events alone. */
      const readyNow = (): string[] => {
        const gone = new Set([...events.acquired, ...events.retired].map((event) => event.sandboxId));
        return events.ready.map((event) => event.sandboxId).filter((id) => !gone.has(id));
      };

      const acquire = async (): Promise<Sandbox> => {
        const sandbox = await pool.acquire();
        handedOut.push(sandbox);
        return sandbox;
      };

      beforeAll(async () => {
        started = await target.start();
        provider = started.provider;
        let createOptions: CreateSandboxOptions = {
          ...started.createOptions,
          ...(provider.capabilities.tags ? { tags } : {}),
        };
        // The file's table agrees with the adapter, so a provider that gains snapshots is noticed.
        expect(provider.capabilities.snapshot && provider.capabilities.images.snapshot).toBe(target.fromSnapshot);
        if (target.fromSnapshot) {
          // The expensive part once, then every pooled sandbox starts from its snapshot.
          const template = await provider.create(createOptions);
          try {
            await template.files.write(templatePath, 'from the snapshot\n');
            snapshot = await template.snapshot!();
          } finally {
            await template.terminate();
          }
          createOptions = { ...createOptions, image: snapshot };
        }
        pool = createSandboxPool(provider, {
          size: 2,
          concurrency: 2,
          createOptions,
          prepare: (sandbox, { signal }) => sandbox.files.write(preparedPath, `prepared ${sandbox.id}\n`, { signal }),
          // A round trip into the sandbox, as a real check would make; `condemned` fails on purpose.
          healthCheck: async (sandbox, { signal }) =>
            !condemned.has(sandbox.id) && (await sandbox.files.readText(preparedPath, { signal })) === `prepared ${sandbox.id}\n`,
        });
        events = record(pool);
      }, 240_000);

      afterAll(async () => {
        await pool?.close();
        await Promise.all(handedOut.splice(0).map((sandbox) => sandbox.terminate()));
        if (snapshot) await provider.deleteSnapshot?.(snapshot);
        const left = await running().catch(() => undefined);
        await started?.close();
        if (left) expect(left).toEqual([]);
      }, 180_000);

      it('hands over two prepared sandboxes from the warm pool at once, creates a third past capacity, and refills', async () => {
        await pool.waitUntilWarm();
        expect(events.created.map((event) => event.forAcquire)).toEqual([false, false]);
        const warmIds = events.ready.map((event) => event.sandboxId);
        expect(new Set(warmIds).size).toBe(2);
        expect(events.prepared.map((event) => event.sandboxId).sort()).toEqual([...warmIds].sort());
        expect(events.created.map((event) => event.sandboxId).sort()).toEqual([...warmIds].sort());
        expect(events.error).toEqual([]);

        // All three in the same tick: the first two take the ready ones before any await, so the
        // third finds none and creates (and prepares) one for its call.
        const [first, second, third] = await Promise.all([acquire(), acquire(), acquire()]);
        expect([first!.id, second!.id].sort()).toEqual([...warmIds].sort());
        expect(warmIds).not.toContain(third!.id);
        expect(new Set(handedOut.map((sandbox) => sandbox.id)).size).toBe(3);
        const acquired = new Map(events.acquired.map((event) => [event.sandboxId, event]));
        expect(acquired.get(first!.id)).toMatchObject({ provider: provider.id, warm: true });
        expect(acquired.get(second!.id)).toMatchObject({ provider: provider.id, warm: true });
        expect(acquired.get(third!.id)).toMatchObject({ provider: provider.id, warm: false });
        expect(events.created.find((event) => event.sandboxId === third!.id)).toMatchObject({ forAcquire: true });
        expect(events.prepared.find((event) => event.sandboxId === third!.id)).toMatchObject({ forAcquire: true });
        for (const sandbox of [first!, second!, third!]) {
          expect(await sandbox.files.readText(preparedPath)).toBe(`prepared ${sandbox.id}\n`);
          if (snapshot) expect(await sandbox.files.readText(templatePath)).toBe('from the snapshot\n');
        }

        // The refill: two new ones, none of them handed out, and exactly five of this file's running.
        await pool.waitUntilWarm();
        expect(pool.stats()).toMatchObject({ ready: 2, checking: 0 });
        const refilled = readyNow();
        expect(refilled).toHaveLength(2);
        for (const id of refilled) expect(handedOut.map((sandbox) => sandbox.id)).not.toContain(id);
        const left = await running();
        if (left) expect(left).toEqual([...handedOut.map((sandbox) => sandbox.id), ...refilled].sort());
        expect(events.retired).toEqual([]);
        expect(events.error).toEqual([]);
      }, 180_000);

      it('retires a sandbox that fails its health check, terminates it on the provider, and hands over the next one', async () => {
        const [oldest, next] = readyNow();
        condemned.add(oldest!);
        const sandbox = await acquire();
        expect(sandbox.id).toBe(next);
        expect(events.retired).toEqual([{ provider: provider.id, sandboxId: oldest, reason: 'unhealthy' }]);
        expect(events.acquired.at(-1)).toMatchObject({ sandboxId: next, warm: true });
        await vi.waitFor(() => expectGone(provider, oldest!), waitOptions);
        const left = await running();
        if (left) expect(left).not.toContain(oldest);
      }, 180_000);

      it('retires a ready sandbox that someone else terminated, through its end watch, and never hands it out', async () => {
        await pool.waitUntilWarm();
        const [waiting] = readyNow();
        // Another provider object ends it, so no event of the pool's provider reports it: the
        // pool's `wait()` on the sandbox has to notice.
        await (await started.another.fromId(waiting!)).terminate();
        await vi.waitFor(
          () => expect(events.retired.at(-1)).toEqual({ provider: provider.id, sandboxId: waiting, reason: 'ended' }),
          waitOptions,
        );
        expect(readyNow()).not.toContain(waiting);
        const sandbox = await acquire();
        expect(sandbox.id).not.toBe(waiting);
        expect(await sandbox.files.readText(preparedPath)).toBe(`prepared ${sandbox.id}\n`);
      }, 180_000);

      it('close terminates what the pool holds, leaves the handed-out ones running, and refuses later acquires', async () => {
        await pool.waitUntilWarm();
        const held = readyNow();
        expect(held).toHaveLength(2);
        const retiredBefore = events.retired.length;
        await pool.close();
        await pool.close();
        expect(events.closed).toEqual([{ provider: provider.id }]);
        expect(
          events.retired
            .slice(retiredBefore)
            .map((event) => [event.sandboxId, event.reason])
            .sort(),
        ).toEqual(held.map((id) => [id, 'closed']).sort());
        for (const id of held) await expectGone(provider, id);
        const left = await running();
        if (left) expect(left).toEqual(handedOut.map((sandbox) => sandbox.id).sort());
        for (const sandbox of handedOut) expect((await sandbox.run(['cat', preparedPath])).stdout).toBe(`prepared ${sandbox.id}\n`);
        await expect(pool.acquire()).rejects.toSatisfy(SandboxPoolClosedError.isInstance);
        expect(events.error).toEqual([]);
      }, 180_000);
    },
  );
}
