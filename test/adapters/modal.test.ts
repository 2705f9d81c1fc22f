/**
 * The conformance suite through the real `modal` SDK, against the local Modal emulator
 * (test/emulators/modal), which runs every sandbox in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ModalClient } from 'modal';
import { createModalSandboxProvider, modalCapabilities } from '../../adapters/modal/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { egressTargets } from '../egress-targets.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from '../emulators/modal/spawn.js';

// The emulator runs in its own process, so the suite's memory checks see the client side only.
let emulator: ModalEmulatorProcess | undefined;
let client: ModalClient | undefined;

describe('modal provider (real SDK against the emulator)', () => {
  // Runs before the suite's own beforeAll, which calls createProvider.
  beforeAll(async () => {
    // Its sandboxes' egress goes to the test internet, which the network-allowlist group reaches.
    emulator = await spawnModalEmulator({ testInternet: true });
  });
  afterAll(async () => {
    client?.close();
    await emulator?.close();
  }, 120_000);

  defineSandboxConformanceSuite({
    name: 'modal',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: modalCapabilities,
    createProvider: async () => {
      // The SDK reads its server URL from the environment when a client is made.
      process.env.MODAL_SERVER_URL = emulator!.url;
      client = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
      return createModalSandboxProvider({
        client,
        appName: 'sandport-conformance',
        // The emulator's tunnels are plain TCP on loopback (no TLS terminator).
        encryptPortsByDefault: false,
      });
    },
    networkTargets: egressTargets,
    skip: {
      // Real Modal terminates TLS for encrypted ports; modal.live.test.ts covers this there.
      'capabilities.tunnels-tls': 'the emulator has no TLS terminator: every tunnel it gives is plain TCP',
    },
  });
});
