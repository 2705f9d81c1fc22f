/**
 * Pod phases and container states in the Kubernetes emulator, driven by the backing local
 * sandbox and read through the real `@kubernetes/client-node` 1.4: a main process's exit
 * (Succeeded / Failed with its code), a memory kill (OOMKilled, also from an exec: cgroup v2 kills
 * the whole container), `activeDeadlineSeconds` (DeadlineExceeded, also after lowering it), image
 * errors, unschedulable requests, scheduling gates, graceful delete, and `pods/log`.
 */
import { CoreV1Api, Exec, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localCapabilities } from '../../adapters/local/index.js';
import { startKubernetesEmulator, type KubernetesEmulator } from './kubernetes/index.js';
import { hasEnded, isRunning, kubeConfigFor, podBody, waitForPod } from './kubernetes/k8s-test-client.js';

let emulator: KubernetesEmulator;
let config: KubeConfig;
let core: CoreV1Api;
const namespace = 'default';

beforeAll(async () => {
  emulator = await startKubernetesEmulator({ startDelayMs: 0, nodeCapacity: { cpu: 4, memoryMiB: 8192 } });
  config = kubeConfigFor(emulator.kubeconfigPath);
  core = config.makeApiClient(CoreV1Api);
}, 60_000);
afterAll(async () => emulator?.close(), 60_000);

const terminated = (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.state?.terminated;
const waitingReason = (reason: string) => (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.state?.waiting?.reason === reason;
// `tail` keeps the last line of a file without newlines, so it grows until the limit kills it.
// It runs as the process itself, not a child of a shell: the emulator learns of memory kills from
// the local provider, which reports them for the process it started.
const memoryHog = ['tail', '/dev/zero'];
const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });

describe('phases from the main process', () => {
  it('ends Succeeded with terminated Completed on exit 0, and serves its output as the pod log', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('ok', { command: ['sh', '-c', 'echo hello-log; exit 0'] }) });
    const pod = await waitForPod(config, namespace, 'ok', hasEnded);
    expect(pod.status?.phase).toBe('Succeeded');
    expect(terminated(pod)).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(pod.status?.conditions?.find((condition) => condition.type === 'Ready')?.status).toBe('False');
    expect(await core.readNamespacedPodLog({ namespace, name: 'ok' })).toBe('hello-log\n');
  });

  it('ends Failed with terminated Error and the exit code otherwise, and refuses exec into it with 400', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('fails', { command: ['sh', '-c', 'exit 5'] }) });
    const pod = await waitForPod(config, namespace, 'fails', hasEnded);
    expect(pod.status?.phase).toBe('Failed');
    expect(terminated(pod)).toMatchObject({ exitCode: 5, reason: 'Error' });
    const refused = await new Exec(config).exec(namespace, 'fails', 'main', ['true'], null, null, null, false).then(
      () => 'opened',
      (error: unknown) => String((error as { message?: string }).message ?? error),
    );
    expect(refused).toContain('400');
  });

  it.skipIf(!localCapabilities.limits.memory)('ends OOMKilled when the main process outgrows the memory limit', async () => {
    await core.createNamespacedPod({
      namespace,
      body: podBody('oom-main', { command: memoryHog, container: { resources: { limits: { memory: '64Mi' } } } }),
    });
    const pod = await waitForPod(config, namespace, 'oom-main', hasEnded);
    expect(pod.status?.phase).toBe('Failed');
    expect(terminated(pod)).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
    expect(pod.spec?.containers[0]?.resources?.requests).toEqual({ memory: '64Mi' });
    expect(pod.status?.qosClass).toBe('Burstable');
  });

  it.skipIf(!localCapabilities.limits.memory)(
    'ends the whole pod OOMKilled when an exec outgrows the limit (cgroup v2 group kill)',
    async () => {
      await core.createNamespacedPod({
        namespace,
        body: podBody('oom-exec', { container: { resources: { limits: { memory: '64Mi', cpu: '500m' } } } }),
      });
      await waitForPod(config, namespace, 'oom-exec', isRunning);
      const status = await new Promise<Record<string, unknown>>((resolve, reject) => {
        new Exec(config)
          .exec(namespace, 'oom-exec', 'main', memoryHog, sink(), sink(), null, false, (value) => resolve(value as never))
          .catch(reject);
      });
      expect(status.status).toBe('Failure');
      const pod = await waitForPod(config, namespace, 'oom-exec', hasEnded);
      expect(pod.status?.phase).toBe('Failed');
      expect(terminated(pod)?.reason).toBe('OOMKilled');
      expect(pod.status?.qosClass).toBe('Guaranteed');
    },
  );
});

describe('deadlines', () => {
  it('fails the pod with reason DeadlineExceeded when activeDeadlineSeconds runs out', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('deadline', { spec: { activeDeadlineSeconds: 1 } }) });
    const pod = await waitForPod(config, namespace, 'deadline', hasEnded);
    expect(pod.status).toMatchObject({
      phase: 'Failed',
      reason: 'DeadlineExceeded',
      message: 'Pod was active on the node longer than the specified deadline',
    });
  });

  it('honours a lowered deadline on a running pod', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('lowered', { spec: { activeDeadlineSeconds: 3600 } }) });
    await waitForPod(config, namespace, 'lowered', isRunning);
    await core.patchNamespacedPod({ namespace, name: 'lowered', body: [{ op: 'replace', path: '/spec/activeDeadlineSeconds', value: 1 }] });
    const pod = await waitForPod(config, namespace, 'lowered', hasEnded);
    expect(pod.status?.reason).toBe('DeadlineExceeded');
  });
});

describe('pending pods', () => {
  it('reports InvalidImageName for a malformed reference and ErrImagePull then ImagePullBackOff for an unreachable registry', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('bad-name', { container: { image: 'Not A Valid/Image' } }) });
    const invalid = await waitForPod(config, namespace, 'bad-name', waitingReason('InvalidImageName'));
    expect(invalid.status?.phase).toBe('Pending');
    await core.createNamespacedPod({ namespace, body: podBody('no-pull', { container: { image: 'registry.invalid/team/app:1' } }) });
    const backOff = await waitForPod(config, namespace, 'no-pull', waitingReason('ImagePullBackOff'));
    expect(backOff.status?.phase).toBe('Pending');
    expect(backOff.status?.containerStatuses?.[0]?.state?.waiting?.message).toContain('registry.invalid');
  });

  it('keeps a pod asking for more than the node has, or for a GPU, Pending with PodScheduled=False Unschedulable', async () => {
    await core.createNamespacedPod({ namespace, body: podBody('too-big', { container: { resources: { limits: { cpu: '64' } } } }) });
    await core.createNamespacedPod({
      namespace,
      body: podBody('gpu', { container: { resources: { limits: { 'nvidia.com/gpu': '1' } } } }),
    });
    for (const [name, resource] of [
      ['too-big', 'cpu'],
      ['gpu', 'nvidia.com/gpu'],
    ] as const) {
      const pod = await waitForPod(
        config,
        namespace,
        name,
        (each) => each.status?.conditions?.some((condition) => condition.type === 'PodScheduled') ?? false,
      );
      expect(pod.status?.phase).toBe('Pending');
      expect(pod.status?.conditions?.[0]).toMatchObject({ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' });
      expect(pod.status?.conditions?.[0]?.message).toContain(`Insufficient ${resource}`);
    }
  });

  it('holds a pod with scheduling gates (SchedulingGated) until a patch removes them', async () => {
    await core.createNamespacedPod({
      namespace,
      body: podBody('gated', { spec: { schedulingGates: [{ name: 'sandport.dev/policies' }] } }),
    });
    const gated = await waitForPod(config, namespace, 'gated', (pod) => pod.status?.conditions?.[0]?.reason === 'SchedulingGated');
    expect(gated.status?.phase).toBe('Pending');
    await core.patchNamespacedPod({ namespace, name: 'gated', body: [{ op: 'remove', path: '/spec/schedulingGates' }] });
    const running = await waitForPod(config, namespace, 'gated', isRunning);
    expect(running.spec?.nodeName).toBe('sandport-emulator-node');
  });
});

describe('persistent volume claims', () => {
  it('mounts a claim as a directory shared by the pods that mount it, read-only where the mount says so', async () => {
    const claim = (name: string, readOnly: boolean) =>
      podBody(name, {
        spec: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }] },
        container: { volumeMounts: [{ name: 'data', mountPath: '/data', readOnly }] },
      });
    await core.createNamespacedPod({ namespace, body: claim('writer', false) });
    await core.createNamespacedPod({ namespace, body: claim('reader', true) });
    await waitForPod(config, namespace, 'writer', isRunning);
    await waitForPod(config, namespace, 'reader', isRunning);
    const run = (pod: string, script: string) =>
      new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const stdout = new Writable({ write: (chunk: Buffer, _encoding, done) => (chunks.push(chunk), done()) });
        new Exec(config)
          .exec(namespace, pod, 'main', ['sh', '-c', script], stdout, sink(), null, false, () => resolve(Buffer.concat(chunks).toString()))
          .catch(reject);
      });
    expect(await run('writer', 'echo kept > /data/note && echo ok')).toBe('ok\n');
    expect(await run('reader', 'cat /data/note; echo x > /data/other 2>/dev/null || echo read-only')).toBe('kept\nread-only\n');
  });
});

describe('delete', () => {
  it('sends SIGTERM to the main process and removes the pod once it exited within the grace period', async () => {
    await core.createNamespacedPod({
      namespace,
      body: podBody('graceful', { command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"] }),
    });
    await waitForPod(config, namespace, 'graceful', isRunning);
    const answer = await core.deleteNamespacedPod({ namespace, name: 'graceful', gracePeriodSeconds: 30 });
    expect(answer.metadata?.deletionGracePeriodSeconds).toBe(30);
    // Gone well before the 30 s grace: the trap ended it on SIGTERM.
    for (;;) {
      const listed = await core.listNamespacedPod({ namespace, fieldSelector: 'metadata.name=graceful' });
      if (listed.items.length === 0) break;
      expect(listed.items[0]?.metadata?.deletionTimestamp).toBeDefined();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
});
