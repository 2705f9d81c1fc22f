import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { SandboxCapabilityUnsupportedError } from '../../src/errors/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const pauseTestIds = [
  'pause.processes-and-files',
  'pause.refused-while-paused',
  'pause.idempotent',
  'pause.exec-waits',
  'pause.idle-timeout',
  'pause.lifetime-kept',
  'pause.terminate',
  'pause.lookup',
];

// The local provider as most laptops run it: without root (no uid switch, no cgroups).
// test/adapters/local-unprivileged.test.ts starts this file as an unprivileged user.
const requested = process.env.SANDPORT_UNPRIVILEGED_RUN === '1';
if (!requested)
  console.warn('skipping the unprivileged conformance run here: test/adapters/local-unprivileged.test.ts runs it as an unprivileged user');

describe.skipIf(!requested)('unprivileged', () => {
  defineSandboxConformanceSuite({
    name: `local, unprivileged (uid ${process.getuid?.()})`,
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: localCapabilities,
    createProvider: () => createLocalSandboxProvider(),
    // Outbound networking without root needs a user-accessible /dev/net/tun, which CI hosts lack.
    createOptions: { network: 'block' },
    skip: {
      // localCapabilities claims the limits, but without root there is no cgroup to enforce them
      // and create refuses them: the capabilities do not describe this host.
      'capabilities.limits-accepted': 'without root the local provider has no cgroups and refuses limits',
      // Pause is the cgroup freezer: without cgroups pause() is SandboxCapabilityUnsupportedError
      // (capability 'pause'), which the test below checks instead.
      ...Object.fromEntries(pauseTestIds.map((id) => [id, 'without root the local provider has no cgroup freezer and refuses pause'])),
    },
  });

  it('pause and resume are refused with SandboxCapabilityUnsupportedError (capability pause); the sandbox runs on', async () => {
    const sandbox = await createLocalSandboxProvider().create({ network: 'block' });
    try {
      for (const call of [() => sandbox.pause(), () => sandbox.resume()]) {
        const error = await call().then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(SandboxCapabilityUnsupportedError.isInstance(error), String(error)).toBe(true);
        expect((error as SandboxCapabilityUnsupportedError).capability).toBe('pause');
      }
      expect(await sandbox.poll()).toEqual({ state: 'running' });
      expect((await sandbox.run(['echo', 'running'])).stdout).toBe('running\n');
    } finally {
      await sandbox.terminate();
    }
  }, 60_000);
});
