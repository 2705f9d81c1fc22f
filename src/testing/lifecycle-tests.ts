import { SandboxAlreadyExistsError, SandboxCapabilityUnsupportedError, SandboxInvalidArgumentError, SandboxNotFoundError } from '../errors/index.js';
import { requireCapability } from '../kit/capability.js';
import { eventually, sleep, type SuiteContext } from './context.js';

export function lifecycleTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  describe('lifecycle', () => {
    context.test('capability flags match the optional methods', async () => {
      const { provider } = context;
      expect(provider.specificationVersion).toBe('sandbox-v1');
      expect(typeof provider.fromName === 'function').toBe(provider.capabilities.fromName);
      expect(typeof provider.list === 'function').toBe(provider.capabilities.list);
      const sandbox = await context.create();
      expect(typeof sandbox.snapshot === 'function').toBe(provider.capabilities.snapshot);
      expect(typeof sandbox.extendTimeout === 'function').toBe(provider.capabilities.extendTimeout);
      if (!provider.capabilities.snapshot) {
        let thrown: unknown;
        try {
          requireCapability(sandbox, 'snapshot');
        } catch (error) {
          thrown = error;
        }
        expect(SandboxCapabilityUnsupportedError.isInstance(thrown)).toBe(true);
      }
      await sandbox.terminate();
    });

    context.test('terminate is idempotent, and later calls are SandboxNotFoundError', async () => {
      const sandbox = await context.create();
      expect(await sandbox.poll()).toEqual({ state: 'running' });
      await sandbox.terminate();
      await sandbox.terminate();
      expect((await sandbox.poll()).state).toBe('terminated');
      expect((await sandbox.wait()).reason).toBe('terminated');
      await context.expectError(sandbox.run(['true']), SandboxNotFoundError);
      await context.expectError(sandbox.exec(['true']), SandboxNotFoundError);
      await context.expectError(sandbox.files.read('/etc/hostname'), SandboxNotFoundError);
      await context.expectError(sandbox.files.write('/tmp/x', 'x'), SandboxNotFoundError);
      await context.expectError(context.provider.fromId(sandbox.id), SandboxNotFoundError);
    });

    context.test('await using terminates the sandbox', async () => {
      let id = '';
      {
        await using sandbox = await context.create();
        id = sandbox.id;
        expect((await sandbox.run(['true'])).exitCode).toBe(0);
      }
      await context.expectError(context.provider.fromId(id), SandboxNotFoundError);
    });

    context.test('a command that is running when the sandbox ends rejects with SandboxNotFoundError', async () => {
      const sandbox = await context.create();
      const process = await sandbox.exec(['sleep', '600']);
      await sandbox.terminate();
      await context.expectError(process.wait(), SandboxNotFoundError);
    });

    context.test(
      'the lifetime timeout ends the sandbox',
      async () => {
        const sandbox = await context.create({ timeoutMs: 2_000 });
        expect((await sandbox.run(['true'])).exitCode).toBe(0);
        const ended = await sandbox.wait();
        expect(ended.reason).toBe('lifetime-timeout');
        await context.expectError(sandbox.run(['true']), SandboxNotFoundError);
      },
      context.provider.capabilities.timeouts.lifetime === false ? 'no lifetime timeout' : undefined,
    );

    context.test(
      'extendTimeout pushes the deadline',
      async () => {
        const sandbox = await context.create({ timeoutMs: 1_500 });
        await sandbox.extendTimeout!(60_000);
        await sleep(2_500);
        expect((await sandbox.poll()).state).toBe('running');
        await sandbox.terminate();
      },
      context.provider.capabilities.extendTimeout ? undefined : 'provider cannot extend the lifetime',
    );

    context.test(
      'the idle timeout ends an unused sandbox but not a busy one',
      async () => {
      const busy = await context.create({ idleTimeoutMs: 1_500 });
      const idle = await context.create({ idleTimeoutMs: 1_500 });
      const work = busy.run(['sleep', '3']);
      expect((await idle.wait()).reason).toBe('idle-timeout');
      expect((await work).exitCode).toBe(0);
      expect((await busy.poll()).state).toBe('running');
      await busy.terminate();
      },
      context.provider.capabilities.timeouts.idle ? undefined : 'provider has no idle timeout',
    );

    context.test('an entrypoint command ends the sandbox when it exits', async () => {
      const sandbox = await context.create({ command: ['/bin/sh', '-c', 'sleep 1; exit 3'] });
      const ended = await sandbox.wait();
      expect(ended.reason).toBe('entrypoint-exited');
      expect(ended.exitCode).toBe(3);
    });

    context.test('invalid create options are SandboxInvalidArgumentError naming the field', async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ memoryMiB: -1 }, 'memoryMiB'],
        [{ cpu: 0 }, 'cpu'],
        [{ timeoutMs: 1.5 }, 'timeoutMs'],
        [{ workdir: 'relative/path' }, 'workdir'],
        [{ env: { 'A=B': 'x' } }, 'env'],
        [{ ports: [70000] }, 'ports'],
        [{ name: 'has space' }, 'name'],
        [{ notAnOption: true }, 'create options'],
      ];
      for (const [options, field] of cases) {
        const error = await context.expectError(context.provider.create(options), SandboxInvalidArgumentError);
        expect(error.argument.startsWith(field) || error.message.includes(field)).toBe(true);
      }
    });
  });

  describe('lookup and tags', () => {
    context.test('fromId attaches to a running sandbox', async () => {
      const sandbox = await context.create();
      await sandbox.files.write('/tmp/marker', 'same sandbox');
      const again = await context.provider.fromId(sandbox.id);
      expect(again.id).toBe(sandbox.id);
      expect(await again.files.readText('/tmp/marker')).toBe('same sandbox');
      await context.expectError(context.provider.fromId('sb-does-not-exist'), SandboxNotFoundError);
      await sandbox.terminate();
    });

    context.test(
      'fromName finds a named sandbox; a duplicate name is rejected',
      async () => {
        const name = `suite-${context.runId}`;
        const sandbox = await context.create({ name });
        expect(sandbox.name).toBe(name);
        const found = await context.provider.fromName!(name);
        expect(found.id).toBe(sandbox.id);
        await context.expectError(context.create({ name }), SandboxAlreadyExistsError);
        await sandbox.terminate();
        await context.expectError(context.provider.fromName!(name), SandboxNotFoundError);
        const reused = await context.create({ name });
        await reused.terminate();
      },
      context.provider.capabilities.fromName === false ? 'provider has no fromName' : undefined,
    );

    context.test(
      'tags are set, read, replaced, and list filters by them',
      async () => {
        const run = context.runId;
        const first = await context.create({ tags: { suite: run, role: 'first' } });
        const second = await context.create({ tags: { suite: run, role: 'second' } });
        expect(await first.getTags()).toEqual({ suite: run, role: 'first' });
        const listed = await context.provider.list!({ tags: { suite: run } });
        expect(listed.map((info) => info.id).sort()).toEqual([first.id, second.id].sort());
        await second.setTags({ suite: run, role: 'changed' });
        expect(await second.getTags()).toEqual({ suite: run, role: 'changed' });
        const changed = await context.provider.list!({ tags: { suite: run, role: 'changed' } });
        expect(changed.map((info) => info.id)).toEqual([second.id]);
        await first.terminate();
        await eventually(async () => (await context.provider.list!({ tags: { suite: run } })).length === 1, 10_000);
        expect((await context.provider.list!({ tags: { suite: run } })).map((info) => info.id)).toEqual([second.id]);
        await second.terminate();
      },
      context.provider.capabilities.list === false ? 'provider has no list' : undefined,
    );
  });
}
