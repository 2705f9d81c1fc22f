/**
 * The conformance suite through the Cloudflare adapter, against the bridge emulator
 * (test/emulators/cloudflare) for both bridge versions: 0.12 (`/exec` with server-sent events)
 * and 0.13 (`/processes`). Each emulator runs in its own process (so the suite's memory checks
 * see the client only) and runs every container in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { cloudflareCapabilities, createCloudflareSandboxProvider, type CloudflareBridgeVersion } from '../../adapters/cloudflare/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { installLocalhostResolution } from '../emulators/cloudflare/index.js';
import { spawnCloudflareBridgeEmulator, type CloudflareBridgeEmulatorProcess } from '../emulators/cloudflare/spawn.js';

for (const version of ['0.12', '0.13'] as const satisfies readonly CloudflareBridgeVersion[]) {
  describe(`cloudflare provider, bridge ${version} (against the emulator)`, () => {
    let emulator: CloudflareBridgeEmulatorProcess | undefined;
    let uninstallResolution: (() => void) | undefined;
    beforeAll(async () => {
      emulator = await spawnCloudflareBridgeEmulator({ version });
      // Tunnel host names are `<x>.trycloudflare.localhost`: this process resolves them to loopback.
      uninstallResolution = installLocalhostResolution();
    }, 120_000);
    afterAll(async () => {
      await emulator?.close();
      uninstallResolution?.();
    }, 120_000);

    defineSandboxConformanceSuite({
      name: `cloudflare-${version}`,
      describe,
      it,
      expect,
      beforeAll,
      afterAll,
      onTestFailed,
      capabilities: cloudflareCapabilities(version),
      // No version option: the adapter detects it from the emulator's OpenAPI document.
      createProvider: async () => {
        const provider = createCloudflareSandboxProvider({ url: emulator!.url, token: emulator!.token });
        expect(await provider.bridgeVersion()).toBe(version);
        return provider;
      },
      skip: {
        // Real quick tunnels are https on trycloudflare.com; cloudflare.live.test.ts covers this there.
        'capabilities.tunnels-tls': 'the emulator has no TLS terminator: its tunnels are plain HTTP',
      },
    });
  });
}
