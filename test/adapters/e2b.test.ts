/**
 * The conformance suite through the real `e2b` SDK, against the local E2B emulator
 * (test/emulators/e2b), which runs every sandbox in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createE2bSandboxProvider, e2bCapabilities, type E2bResourceTemplate } from '../../adapters/e2b/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { egressTargets } from '../egress-targets.js';
import { installLocalhostResolution } from '../emulators/e2b/index.js';
import { spawnE2bEmulator, type E2bEmulatorProcess } from '../emulators/e2b/spawn.js';
import { sizedTemplateName, templateSizes } from '../emulators/e2b/e2b-templates.js';

// The emulator runs in its own process, so the suite's memory checks see the client side only.
let emulator: E2bEmulatorProcess | undefined;
let uninstallResolution: (() => void) | undefined;

/** The emulator's prebuilt sizes of `base`, so that cpu/memory map to a template without a build. */
const templates: E2bResourceTemplate[] = templateSizes.cpuCount.flatMap((cpu) =>
  templateSizes.memoryMB.map((memoryMiB) => ({ template: sizedTemplateName('base', cpu, memoryMiB), cpu, memoryMiB })),
);

describe('e2b provider (real SDK against the emulator)', () => {
  beforeAll(async () => {
    // Its sandboxes' egress goes to the test internet, which the network-allowlist group reaches.
    emulator = await spawnE2bEmulator({ testInternet: true });
    // Tunnel host names are `<port>-<id>.e2b.localhost`: this process resolves them to loopback.
    uninstallResolution = installLocalhostResolution();
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
    uninstallResolution?.();
  }, 120_000);

  defineSandboxConformanceSuite({
    name: 'e2b',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: e2bCapabilities,
    createProvider: async () =>
      createE2bSandboxProvider({
        apiKey: 'e2b_emulator',
        apiUrl: emulator!.url,
        sandboxUrl: emulator!.sandboxUrl,
        domain: emulator!.domain,
        templates,
        // The emulator's tunnel proxy is plain HTTP on loopback (no TLS terminator).
        tunnelScheme: 'http',
      }),
    networkTargets: egressTargets,
    skip: {
      // Real E2B terminates TLS for every port; e2b.live.test.ts covers this there.
      'capabilities.tunnels-tls': 'the emulator has no TLS terminator: its tunnels are plain HTTP',
    },
  });
});
