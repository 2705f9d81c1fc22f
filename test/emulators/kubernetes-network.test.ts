/**
 * NetworkPolicies in the Kubernetes emulator, through the real `@kubernetes/client-node` 1.4:
 * their egress rules become the backing sandbox's network (k8s-network.ts). Pods reach the test
 * internet (test/egress-internet.ts: documentation addresses served on loopback by this process),
 * so "reachable" is observable without sending anything off the machine. Policies are created while a
 * scheduling gate holds the pod, then the gate goes, as the wire agreement recommends.
 */
import { CoreV1Api, Exec, NetworkingV1Api, type KubeConfig, type V1NetworkPolicyEgressRule } from '@kubernetes/client-node';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubernetesEmulator, type KubernetesEmulator } from './kubernetes/index.js';
import { isRunning, kubeConfigFor, podBody, waitForPod } from './kubernetes/k8s-test-client.js';
import { networkForPod } from './kubernetes/k8s-network.js';

let emulator: KubernetesEmulator;
let config: KubeConfig;
let core: CoreV1Api;
let networking: NetworkingV1Api;
const namespace = 'default';

beforeAll(async () => {
  emulator = await startKubernetesEmulator({ startDelayMs: 0, testInternet: true });
  config = kubeConfigFor(emulator.kubeconfigPath);
  core = config.makeApiClient(CoreV1Api);
  networking = config.makeApiClient(NetworkingV1Api);
}, 60_000);
afterAll(async () => emulator?.close(), 60_000);

async function run(pod: string, script: string): Promise<string> {
  const chunks: Buffer[] = [];
  const stdout = new Writable({ write: (chunk: Buffer, _encoding, done) => (chunks.push(chunk), done()) });
  const stderr = new Writable({ write: (_chunk, _encoding, done) => done() });
  await new Promise((resolve, reject) => {
    new Exec(config).exec(namespace, pod, 'main', ['sh', '-c', script], stdout, stderr, null, false, resolve).catch(reject);
  });
  return Buffer.concat(chunks).toString('utf8');
}

/** The HTTP status curl gets for `http://<host>/` (`000` when no connection). */
const reach = (pod: string, host: string) => run(pod, `curl -s -o /dev/null -w '%{http_code}' -m 10 http://${host}/ || true`);

/** Creates a gated pod, the policy selecting it, then lets it start. */
async function podUnder(name: string, egress: V1NetworkPolicyEgressRule[]): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: podBody(name, { labels: { sandbox: name }, spec: { schedulingGates: [{ name: 'sandport.dev/network' }] } }),
  });
  await networking.createNamespacedNetworkPolicy({
    namespace,
    body: {
      metadata: { name: `${name}-net` },
      spec: { podSelector: { matchLabels: { sandbox: name } }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress },
    },
  });
  await core.patchNamespacedPod({ namespace, name, body: [{ op: 'remove', path: '/spec/schedulingGates' }] });
  await waitForPod(config, namespace, name, isRunning);
}

describe('egress policies onto the backing sandbox', () => {
  it('leaves a pod no policy selects on the open (test) internet', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('open') });
    await waitForPod(config, namespace, 'open', isRunning);
    expect(await reach('open', 'allowed.test')).toBe('200');
    expect(await reach('open', 'denied.test')).toBe('200');
  });

  it('cuts a pod off when its policy allows no egress', async () => {
    await podUnder('blocked', []);
    expect(await reach('blocked', 'allowed.test')).not.toBe('200');
  });

  it('allows only the ipBlock CIDRs, and applies a widened policy to the running pod', async () => {
    await podUnder('cidr', [{ to: [{ ipBlock: { cidr: '198.51.100.10/32' } }] }]);
    expect(await reach('cidr', 'allowed.test')).toBe('200');
    expect(await reach('cidr', 'denied.test')).not.toBe('200');
    await networking.patchNamespacedNetworkPolicy({
      namespace,
      name: 'cidr-net',
      body: [{ op: 'add', path: '/spec/egress/0/to/-', value: { ipBlock: { cidr: '198.51.100.20/32' } } }],
    });
    expect(await reach('cidr', 'denied.test')).toBe('200');
  });

  it('reads 0.0.0.0/0 with the internal ranges excepted as outbound access', async () => {
    await podUnder('outbound', [
      { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'] } }] },
    ]);
    expect(await reach('outbound', 'denied.test')).toBe('200');
  });
});

describe('a cluster whose network plugin ignores NetworkPolicy', () => {
  it('stores the policy and enforces nothing with enforceNetworkPolicy: false', async () => {
    const lax = await startKubernetesEmulator({ startDelayMs: 0, testInternet: true, enforceNetworkPolicy: false });
    try {
      const laxConfig = kubeConfigFor(lax.kubeconfigPath);
      const laxCore = laxConfig.makeApiClient(CoreV1Api);
      await laxCore.createNamespacedPod({ namespace, body: podBody('lax', { labels: { sandbox: 'lax' } }) });
      const stored = await laxConfig.makeApiClient(NetworkingV1Api).createNamespacedNetworkPolicy({
        namespace,
        body: {
          metadata: { name: 'lax-net' },
          spec: { podSelector: { matchLabels: { sandbox: 'lax' } }, policyTypes: ['Egress'], egress: [] },
        },
      });
      expect(stored.spec?.policyTypes).toEqual(['Egress']);
      await waitForPod(laxConfig, namespace, 'lax', isRunning);
      const saved = config;
      config = laxConfig;
      try {
        expect(await reach('lax', 'denied.test')).toBe('200');
      } finally {
        config = saved;
      }
    } finally {
      await lax.close();
    }
  });
});

describe('the mapping itself', () => {
  const pod = { metadata: { name: 'p', uid: 'u', resourceVersion: '1', creationTimestamp: '', labels: { app: 'a' } } };
  const policy = (spec: Record<string, unknown>) => ({
    metadata: { name: 'n', uid: 'v', resourceVersion: '1', creationTimestamp: '' },
    spec,
  });
  it('maps selectors, policy types, peers and except lists as documented', () => {
    expect(networkForPod(pod, [])).toBe('allow');
    expect(networkForPod(pod, [policy({ podSelector: { matchLabels: { app: 'other' } }, policyTypes: ['Egress'], egress: [] })])).toBe(
      'allow',
    );
    expect(networkForPod(pod, [policy({ podSelector: {}, policyTypes: ['Ingress'], ingress: [] })])).toBe('allow');
    expect(networkForPod(pod, [policy({ podSelector: {}, egress: [] })])).toEqual({ allowCidrs: [], allowDomains: [] });
    expect(networkForPod(pod, [policy({ podSelector: {}, policyTypes: ['Egress'], egress: [{}] })])).toBe('allow');
    expect(
      networkForPod(pod, [
        policy({
          podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] },
          policyTypes: ['Egress'],
          egress: [
            {
              to: [
                { ipBlock: { cidr: '10.1.0.0/16' } },
                { ipBlock: { cidr: '10.2.0.0/16', except: ['10.2.3.0/24'] } },
                { namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
              ],
            },
          ],
        }),
      ]),
    ).toEqual({ allowCidrs: ['10.1.0.0/16'], allowDomains: [] });
  });
});
