import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

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
    },
  });
});
