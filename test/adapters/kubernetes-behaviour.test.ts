/**
 * What the Kubernetes adapter leaves on the cluster, read back with client-node itself against
 * the emulator: secrets only in a Secret owned by the pod (never in the pod spec), the network
 * policy owned by the pod and selecting it alone, both gone with it, and typed create failures
 * for an invalid and an unpullable image.
 */
import { CoreV1Api, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubernetesSandboxProvider, type KubernetesSandboxProvider } from '../../adapters/kubernetes/index.js';
import { SandboxInvalidArgumentError, SandboxProviderError } from '../../src/kit/index.js';
import { spawnKubernetesEmulator, type KubernetesEmulatorProcess } from '../emulators/kubernetes/spawn.js';

let emulator: KubernetesEmulatorProcess | undefined;
let provider: KubernetesSandboxProvider;
let core: CoreV1Api;
let networking: NetworkingV1Api;

async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return check();
}

describe('kubernetes adapter on the cluster (read back with client-node)', () => {
  beforeAll(async () => {
    emulator = await spawnKubernetesEmulator();
    provider = createKubernetesSandboxProvider({ kubeconfig: emulator.kubeconfigPath, namespace: emulator.namespace });
    const config = new KubeConfig();
    config.loadFromFile(emulator.kubeconfigPath);
    core = config.makeApiClient(CoreV1Api);
    networking = config.makeApiClient(NetworkingV1Api);
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
  }, 120_000);

  it('keeps secrets out of the pod spec, in a Secret owned by the pod that goes with it', async () => {
    const sandbox = await provider.create({ secrets: { API_TOKEN: "s3cr'et value" }, env: { PLAIN: 'visible' } });
    const namespace = emulator!.namespace;
    const result = await sandbox.run(['/bin/sh', '-c', 'echo "$API_TOKEN|$PLAIN"']);
    expect(result.stdout).toBe("s3cr'et value|visible\n");
    // The exec's own env wins over a secret of the same name.
    expect((await sandbox.run(['/bin/sh', '-c', 'echo "$API_TOKEN"'], { env: { API_TOKEN: 'mine' } })).stdout).toBe('mine\n');
    const pod = await core.readNamespacedPod({ namespace, name: sandbox.id });
    expect(JSON.stringify(pod)).not.toContain('s3cr');
    const secrets = (await core.listNamespacedSecret({ namespace })).items.filter((secret) =>
      secret.metadata?.name?.startsWith(`${sandbox.id}-env-`),
    );
    expect(secrets).toHaveLength(1);
    expect(secrets[0]!.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Pod', name: sandbox.id, uid: pod.metadata!.uid }),
    ]);
    await sandbox.terminate();
    const gone = await eventually(async () =>
      (await core.listNamespacedSecret({ namespace })).items.every((secret) => !secret.metadata?.name?.startsWith(`${sandbox.id}-env-`)),
    );
    expect(gone).toBe(true);
  }, 120_000);

  it("makes network: 'block' a NetworkPolicy owned by the pod, selecting it by its own instance label", async () => {
    const sandbox = await provider.create({ network: 'block' });
    const namespace = emulator!.namespace;
    const pod = await core.readNamespacedPod({ namespace, name: sandbox.id });
    const policies = (await networking.listNamespacedNetworkPolicy({ namespace })).items.filter((policy) =>
      policy.metadata?.name?.startsWith(`${sandbox.id}-net-`),
    );
    expect(policies).toHaveLength(1);
    const [policy] = policies;
    expect(policy!.spec!.egress).toEqual([]);
    expect(policy!.spec!.podSelector!.matchLabels).toEqual({ 'sandport.dev/instance': pod.metadata!.labels!['sandport.dev/instance'] });
    expect(policy!.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: 'Pod', uid: pod.metadata!.uid })]);
    // The spec is hardened as planned, and the cluster did not change it.
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    expect(pod.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation).toBe(false);
    await sandbox.terminate();
    const gone = await eventually(async () =>
      (await networking.listNamespacedNetworkPolicy({ namespace })).items.every(
        (item) => !item.metadata?.name?.startsWith(`${sandbox.id}-net-`),
      ),
    );
    expect(gone).toBe(true);
  }, 120_000);

  it('fails a create with an invalid image name as SandboxInvalidArgumentError(image), an unpullable one as SandboxProviderError, leaving no pod', async () => {
    const invalid = await provider.create({ image: 'Not A Valid::Image' }).catch((error: unknown) => error);
    expect(SandboxInvalidArgumentError.isInstance(invalid)).toBe(true);
    expect((invalid as SandboxInvalidArgumentError).argument).toBe('image');
    const unpullable = await provider.create({ image: 'registry.invalid/nothing:1' }).catch((error: unknown) => error);
    expect(SandboxProviderError.isInstance(unpullable)).toBe(true);
    expect((unpullable as Error).message).toMatch(/cannot be pulled/);
    const left = await eventually(async () => (await provider.list()).length === 0);
    expect(left).toBe(true);
  }, 120_000);
});
