import { SandboxAlreadyExistsError, SandboxInvalidArgumentError, SandboxNotFoundError } from '../errors/index.js';
import { eventually, sleep, type SuiteContext } from './context.js';

export function lifecycleTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  describe('lifecycle', () => {
    context.test('lifecycle.terminate', 'terminate is idempotent, and later calls are SandboxNotFoundError', async () => {
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

    context.test('lifecycle.await-using', 'await using terminates the sandbox', async () => {
      let id = '';
      {
        await using sandbox = await context.create();
        id = sandbox.id;
        expect((await sandbox.run(['true'])).exitCode).toBe(0);
      }
      await context.expectError(context.provider.fromId(id), SandboxNotFoundError);
    });

    context.test(
      'lifecycle.exec-outlived',
      'a command that is running when the sandbox ends rejects with SandboxNotFoundError',
      async () => {
        const sandbox = await context.create();
        const process = await sandbox.exec(['sleep', '600']);
        await sandbox.terminate();
        await context.expectError(process.wait(), SandboxNotFoundError);
      },
    );

    context.test(
      'lifecycle.lifetime-timeout',
      'the lifetime timeout ends the sandbox',
      async () => {
        const sandbox = await context.create({ timeoutMs: 2_000 });
        expect((await sandbox.run(['true'])).exitCode).toBe(0);
        const ended = await sandbox.wait();
        expect(ended.reason).toBe('lifetime-timeout');
        await context.expectError(sandbox.run(['true']), SandboxNotFoundError);
      },
      caps.timeouts.lifetime ? undefined : 'provider has no lifetime timeout',
    );

    context.test(
      'lifecycle.extend-timeout',
      'extendTimeout pushes the deadline',
      async () => {
        // The first lifetime leaves room for a slow provider's create and extend (an exec on some)
        // on a loaded machine; the sleep then outlasts it by a second.
        const sandbox = await context.create({ timeoutMs: 4_000 });
        await sandbox.extendTimeout!(60_000);
        await sleep(5_000);
        expect((await sandbox.poll()).state).toBe('running');
        await sandbox.terminate();
      },
      caps.extendTimeout && caps.timeouts.lifetime ? undefined : 'provider cannot extend the lifetime',
    );

    context.test(
      'lifecycle.idle-timeout',
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
      caps.timeouts.idle ? undefined : 'provider has no idle timeout',
    );

    context.test('lifecycle.warnings', 'sandbox.warnings is an array of typed warnings', async () => {
      const sandbox = await context.create();
      expect(Array.isArray(sandbox.warnings)).toBe(true);
      for (const warning of sandbox.warnings) expect(['unsupported-setting', 'other']).toContain(warning.type);
      await sandbox.terminate();
    });

    context.test('lifecycle.entrypoint', 'an entrypoint command ends the sandbox when it exits', async () => {
      const sandbox = await context.create({ command: ['/bin/sh', '-c', 'sleep 1; exit 3'] });
      const ended = await sandbox.wait();
      expect(ended.reason).toBe('entrypoint-exited');
      expect(ended.exitCode).toBe(3);
    });

    context.test(
      'lifecycle.entrypoint-create-signal',
      'aborting the create’s signal after create resolved leaves the entrypoint running; its exit still ends the sandbox',
      async () => {
        // A create given AbortSignal.timeout(…) must not lose its command when the timer fires.
        const controller = new AbortController();
        // It exits a second after the file appears, so the write that makes it is not cut off.
        const script = 'while [ ! -e /tmp/sandport-stop ]; do sleep 0.1; done; sleep 1; exit 5';
        const sandbox = await context.create({ command: ['/bin/sh', '-c', script], signal: controller.signal });
        controller.abort(new Error('the caller gave up after create'));
        // Time for a kill on abort to have landed, if the adapter sent one.
        await sleep(1_500);
        expect((await sandbox.poll()).state).toBe('running');
        await sandbox.files.write('/tmp/sandport-stop', '');
        expect(await sandbox.wait()).toMatchObject({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 5 });
      },
    );

    context.test('lifecycle.invalid-options', 'invalid create options are SandboxInvalidArgumentError naming the field', async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ memoryMiB: -1 }, 'memoryMiB'],
        [{ cpu: 0 }, 'cpu'],
        [{ timeoutMs: 1.5 }, 'timeoutMs'],
        [{ workdir: 'relative/path' }, 'workdir'],
        [{ env: { 'A=B': 'x' } }, 'env'],
        [{ ports: [70000] }, 'ports'],
        [{ name: 'has space' }, 'name'],
      ];
      for (const [options, field] of cases) {
        const error = await context.expectError(context.provider.create(options), SandboxInvalidArgumentError);
        // The field itself, or a path inside it (`env.A=B`, `ports.0`).
        const named = error.argument === field || error.argument.startsWith(`${field}.`);
        expect(named, `argument '${error.argument}' for a bad ${field}`).toBe(true);
      }
      // An unknown key has no field of its own: the argument is the key or the whole options
      // object, and the message must name the key.
      const unknown = await context.expectError(
        context.provider.create({ notAnOption: true } as Record<string, unknown>),
        SandboxInvalidArgumentError,
      );
      expect(['notAnOption', 'create options']).toContain(unknown.argument);
      expect(unknown.message).toContain('notAnOption');
    });
  });

  describe('lookup and tags', () => {
    context.test('lookup.from-id', 'fromId attaches to a running sandbox', async () => {
      const sandbox = await context.create();
      await sandbox.files.write('/tmp/marker', 'same sandbox');
      const again = await context.provider.fromId(sandbox.id);
      expect(again.id).toBe(sandbox.id);
      expect(await again.files.readText('/tmp/marker')).toBe('same sandbox');
      await context.expectError(context.provider.fromId('sb-does-not-exist'), SandboxNotFoundError);
      await sandbox.terminate();
    });

    context.test(
      'lookup.from-name',
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
      caps.fromName ? undefined : 'provider has no fromName',
    );

    context.test(
      'lookup.tags-list',
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
      !caps.list ? 'provider has no list' : !caps.tags ? 'provider has no tags' : undefined,
    );
  });
}
