/**
 * The conformance suite through the Fly adapter (our own Machines API client), against the local
 * Fly emulator (test/emulators/fly) in a child process, which runs every machine in the local
 * bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createFlySandboxProvider, flyCapabilities } from '../../adapters/fly/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { installLocalhostResolution } from '../emulators/fly/index.js';
import { spawnFlyEmulator, type FlyEmulatorProcess } from '../emulators/fly/spawn.js';

// The emulator runs in its own process, so the suite's memory checks see the client side only.
let emulator: FlyEmulatorProcess | undefined;
let uninstallResolution: (() => void) | undefined;

describe('fly provider (our client against the emulator)', () => {
  beforeAll(async () => {
    emulator = await spawnFlyEmulator();
    // Public host names are `<app>.fly.localhost:<edgePort>`: this process resolves them to loopback.
    uninstallResolution = installLocalhostResolution();
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
    uninstallResolution?.();
  }, 120_000);

  defineSandboxConformanceSuite({
    name: 'fly',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: flyCapabilities,
    createProvider: async () =>
      createFlySandboxProvider({
        apiHostname: emulator!.url,
        token: emulator!.token,
        org: 'personal',
        // The emulator's edge is plain HTTP on loopback (no TLS terminator).
        publicDomain: emulator!.edgeDomain,
        tunnelScheme: 'http',
      }),
    skip: {
      // Real Fly terminates TLS on its edge; fly.live.test.ts covers this there.
      'capabilities.tunnels-tls': 'the emulator has no TLS terminator: its edge is plain HTTP',
    },
  });
});
