/**
 * The conformance suite through the Kubernetes adapter (client-node 1.4 for REST and watch, our
 * own exec and port-forward client) against the Kubernetes API emulator (test/emulators/kubernetes)
 * in a child process, whose pods run in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createKubernetesSandboxProvider, kubernetesCapabilities } from '../../adapters/kubernetes/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { spawnKubernetesEmulator, type KubernetesEmulatorProcess } from '../emulators/kubernetes/spawn.js';

// The emulator runs in its own process, so the suite's memory checks see the client side only.
let emulator: KubernetesEmulatorProcess | undefined;

describe('kubernetes provider (our adapter against the emulator)', () => {
  beforeAll(async () => {
    emulator = await spawnKubernetesEmulator();
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
  }, 120_000);

  defineSandboxConformanceSuite({
    name: 'kubernetes',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: kubernetesCapabilities,
    createProvider: async () => createKubernetesSandboxProvider({ kubeconfig: emulator!.kubeconfigPath, namespace: emulator!.namespace }),
  });
});
