/**
 * The conformance suite through the real `@daytonaio/sdk`, against the local Daytona emulator
 * (test/emulators/daytona), which runs every sandbox in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createDaytonaSandboxProvider, daytonaCapabilities } from '../../adapters/daytona/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { egressTargets } from '../egress-targets.js';
import { installLocalhostResolution, spawnDaytonaEmulator, type DaytonaEmulatorProcess } from '../emulators/daytona/index.js';

// The emulator runs in its own process, so the suite's memory checks see the client side only.
let emulator: DaytonaEmulatorProcess | undefined;
let uninstallResolution: (() => void) | undefined;

describe('daytona provider (real SDK against the emulator)', () => {
  beforeAll(async () => {
    // Its sandboxes' egress goes to the test internet, which the network-allowlist group reaches.
    emulator = await spawnDaytonaEmulator({ testInternet: true });
    // Preview host names end in `.localhost`: this process resolves them to loopback.
    uninstallResolution = installLocalhostResolution();
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
    uninstallResolution?.();
  }, 120_000);

  defineSandboxConformanceSuite({
    name: 'daytona',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: daytonaCapabilities,
    createProvider: async () => createDaytonaSandboxProvider({ apiKey: emulator!.apiKey, apiUrl: emulator!.url }),
    networkTargets: egressTargets,
    skip: {
      // Real Daytona serves previews over https; daytona.live.test.ts covers this there.
      'capabilities.tunnels-tls': 'the emulator has no TLS terminator: its previews are plain HTTP',
    },
  });
});
