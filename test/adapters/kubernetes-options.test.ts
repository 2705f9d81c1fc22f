/**
 * The Kubernetes adapter's pure plans: the hardened pod spec, requests equal to limits, names and
 * tags (hashed labels, exact annotation), the NetworkPolicy per network option, refusals, the exec
 * Status → exit code, start failures → typed errors, pod status → end reason, and the read-back
 * check of the admitted pod.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  checkKubernetesReadBack,
  kubernetesCapabilities,
  kubernetesEndReason,
  kubernetesKeys,
  kubernetesStartFailure,
  parseKubernetesExitStatus,
  planKubernetesCreate,
  planKubernetesNetworkPolicy,
  planKubernetesPodName,
  planKubernetesSelector,
  planKubernetesTagLabels,
  planKubernetesTagUpdate,
  tagsFromKubernetesPod,
} from '../../adapters/kubernetes/index.js';
import { quantity } from '../../adapters/kubernetes/kubernetes-options.js';
import { kubernetesExecArgv, kubernetesSecretsScript } from '../../adapters/kubernetes/kubernetes-scripts.js';
import { createSandboxOptionsSchema, type CreateSandboxOptions } from '../../src/kit/index.js';

const now = Date.UTC(2026, 11, 1, 12, 0, 0);
const plan = (options: CreateSandboxOptions, extra: { internalCidrs?: string[] } = {}) =>
  planKubernetesCreate(createSandboxOptionsSchema.parse(options), { namespace: 'team-a', now, nonce: 'abcdefgh', ...extra });

describe('planKubernetesCreate', () => {
  it('makes a hardened plain pod: no token, no service links, seccomp, no escalation, Docker capabilities, hard cap only', () => {
    const { pod } = plan({ image: 'python:3.12', workdir: '/work', env: { A: '1' } });
    const spec = pod.spec!;
    expect(spec.restartPolicy).toBe('Never');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.enableServiceLinks).toBe(false);
    expect(spec.securityContext?.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(spec.activeDeadlineSeconds).toBe(24 * 3600 + 60);
    const [container] = spec.containers;
    expect(container!.name).toBe('sandbox');
    expect(container!.image).toBe('python:3.12');
    expect(container!.workingDir).toBe('/work');
    expect(container!.env).toEqual([{ name: 'A', value: '1' }]);
    expect(container!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'], add: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'] },
    });
    // PID 1 is the deadline keeper with the deadline (5 min default) and the workdir.
    expect(container!.command!.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(container!.command!.slice(3)).toEqual([String(Math.ceil((now + 300_000) / 1000)), '/work']);
    expect(pod.metadata!.annotations![kubernetesKeys.deadline]).toBe(String(Math.ceil((now + 300_000) / 1000)));
  });

  it('sets requests equal to limits for cpu, memory and gpu', () => {
    const { pod, warnings } = plan({ cpu: 0.5, memoryMiB: 768, gpu: 'T4:2' });
    const resources = pod.spec!.containers[0]!.resources!;
    expect(resources.limits).toEqual({ cpu: '500m', memory: '768Mi', 'nvidia.com/gpu': '2' });
    expect(resources.requests).toEqual(resources.limits);
    expect(warnings.map((warning) => warning.type === 'unsupported-setting' && warning.setting)).toEqual(['gpu']);
  });

  it('keeps secrets out of the pod spec: a Secret mounted read-only, sourced by the exec prelude', () => {
    const { pod, secret } = plan({ secrets: { TOKEN: "it's secret" }, env: { PLAIN: 'x' } });
    expect(JSON.stringify(pod)).not.toContain("it's secret");
    expect(secret!.stringData!['env.sh']).toBe(kubernetesSecretsScript({ TOKEN: "it's secret" }));
    expect(secret!.metadata!.name).toBe(`${pod.metadata!.name}-env-abcdefgh`);
    expect(pod.spec!.volumes).toContainEqual({
      name: 'sandport-secrets',
      secret: { secretName: secret!.metadata!.name, defaultMode: 0o400 },
    });
    expect(pod.spec!.containers[0]!.volumeMounts).toContainEqual({
      name: 'sandport-secrets',
      mountPath: '/.sandport/secrets',
      readOnly: true,
    });
  });

  it('derives a named sandbox pod name deterministically per namespace, and a random one otherwise', () => {
    expect(plan({ name: 'web' }).podName).toBe(planKubernetesPodName('web', 'team-a'));
    expect(planKubernetesPodName('web', 'team-a')).toMatch(/^sbx-[a-z2-7]{20}$/);
    expect(planKubernetesPodName('web', 'team-b')).not.toBe(planKubernetesPodName('web', 'team-a'));
    expect(plan({}).podName).not.toBe(plan({}).podName);
    expect(plan({ name: 'web' }).pod.metadata!.annotations![kubernetesKeys.name]).toBe('web');
  });

  it('declares ports as container ports and PVC volumes by name, read-only honoured', () => {
    const { pod } = plan({ ports: [8080], volumes: { '/data': { source: 'cache', readOnly: true } } });
    expect(pod.spec!.containers[0]!.ports).toEqual([{ containerPort: 8080, protocol: 'TCP' }]);
    expect(pod.spec!.volumes).toEqual([{ name: 'vol-0', persistentVolumeClaim: { claimName: 'cache', readOnly: true } }]);
    expect(pod.spec!.containers[0]!.volumeMounts).toEqual([{ name: 'vol-0', mountPath: '/data', readOnly: true }]);
  });

  it('refuses what Kubernetes cannot honour', () => {
    expect(() => plan({ pidsLimit: 100 })).toThrow(expect.objectContaining({ code: 'capability_unsupported' }));
    expect(() => plan({ image: { base: 'debian', commands: ['true'] } })).toThrow(
      expect.objectContaining({ code: 'capability_unsupported' }),
    );
    expect(() => plan({ network: { allowDomains: ['example.com'] } })).toThrow(expect.objectContaining({ code: 'capability_unsupported' }));
    expect(() => plan({ providerOptions: { kubernetes: { labels: { 'sandport.dev/x': 'y' } } } })).toThrow(
      expect.objectContaining({ code: 'invalid_argument' }),
    );
    expect(() => plan({ providerOptions: { kubernetes: { unknown: 1 } } })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(kubernetesCapabilities.snapshot).toBe(false);
  });

  it('passes the runtime class and scheduling options through', () => {
    const { pod } = plan({ providerOptions: { kubernetes: { runtimeClassName: 'gvisor', nodeSelector: { gpu: 'yes' } } } });
    expect(pod.spec!.runtimeClassName).toBe('gvisor');
    expect(pod.spec!.nodeSelector).toEqual({ gpu: 'yes' });
  });
});

describe('tags', () => {
  it('index tags as hashed labels (any key and value) and keep them exactly in an annotation', () => {
    const tags = { 'team/owner': 'a very long value with spaces and ünïcode '.repeat(3) };
    const { pod } = plan({ tags });
    const labels = planKubernetesTagLabels(tags);
    const [[key, value]] = Object.entries(labels) as [[string, string]];
    expect(key).toMatch(/^t\.sandport\.dev\/[0-9a-f]{16}$/);
    expect(value).toMatch(/^[0-9a-f]{16}$/);
    expect(pod.metadata!.labels).toMatchObject(labels);
    expect(tagsFromKubernetesPod(pod)).toEqual(tags);
    expect(planKubernetesSelector(tags)).toBe(`app.kubernetes.io/managed-by=sandport,${key}=${value}`);
    expect(planKubernetesSelector()).toBe('app.kubernetes.io/managed-by=sandport');
  });

  it('replace tags with one merge patch that removes the old labels', () => {
    const { pod } = plan({ tags: { old: '1' } });
    const patch = planKubernetesTagUpdate(pod, { fresh: '2' });
    const [oldLabel] = Object.keys(planKubernetesTagLabels({ old: '1' }));
    expect((patch.metadata.labels as Record<string, unknown>)[oldLabel!]).toBeNull();
    expect(patch.metadata.labels).toMatchObject(planKubernetesTagLabels({ fresh: '2' }));
    expect(patch.metadata.annotations).toEqual({ [kubernetesKeys.tags]: '{"fresh":"2"}' });
  });
});

describe('planKubernetesNetworkPolicy', () => {
  const names = { policyName: 'p-net', namespace: 'ns', instance: 'abc' };
  it('block: no ingress, no egress, selecting the pod by its per-create instance label', () => {
    const { policy, probe } = planKubernetesNetworkPolicy('block', names);
    expect(probe).toBe(true);
    expect(policy!.spec).toEqual({
      podSelector: { matchLabels: { 'sandport.dev/instance': 'abc' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [],
    });
  });

  it('CIDRs: egress to them as ipBlocks, plus DNS', () => {
    const parsed = createSandboxOptionsSchema.parse({ network: { allowCidrs: ['10.1.0.0/16'] } }).network;
    const { policy } = planKubernetesNetworkPolicy(parsed, names);
    expect(policy!.spec!.egress![0]).toEqual({ to: [{ ipBlock: { cidr: '10.1.0.0/16' } }] });
    expect(policy!.spec!.egress![1]!.ports).toHaveLength(2);
  });

  it('allow: outbound-only excluding the cluster ranges and link-local when they are configured, else no policy', () => {
    expect(planKubernetesNetworkPolicy('allow', names).policy).toBeUndefined();
    expect(planKubernetesNetworkPolicy(undefined, names).probe).toBe(false);
    const { policy } = planKubernetesNetworkPolicy('allow', names, ['10.0.0.0/8', 'fd00::/8']);
    expect(policy!.spec!.ingress).toEqual([]);
    expect(policy!.spec!.egress![0]!.to).toEqual([
      { ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '169.254.0.0/16'] } },
      { ipBlock: { cidr: '::/0', except: ['fd00::/8'] } },
    ]);
  });
});

describe('exec', () => {
  it('reads the exit code from the Status frame', () => {
    expect(parseKubernetesExitStatus({ status: 'Success' })).toEqual({ exitCode: 0, signal: undefined });
    expect(
      parseKubernetesExitStatus({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '137' }] },
      }),
    ).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(parseKubernetesExitStatus({ status: 'Failure', reason: 'InternalError', message: 'boom' })).toBeUndefined();
  });

  it('puts the exec env and the secrets prelude in front of the kit wrapper (Kubernetes exec has no env field)', () => {
    const argv = kubernetesExecArgv('x1', ['echo', 'a b'], { cwd: '/w', env: { K: 'v w' } });
    expect(argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(argv[2]).toContain('/.sandport/secrets/env.sh');
    expect(argv.slice(3)).toEqual(['sandport-exec', '1', 'K=v w', 'x1', '/w', '1', '', 'echo', 'a b']);
  });
});

const podWith = (status: V1Pod['status'], annotations: Record<string, string> = {}): V1Pod => ({
  metadata: { name: 'p', annotations },
  spec: { containers: [{ name: 'sandbox', image: 'img' }] },
  status,
});

describe('pod status', () => {
  it('maps start failures to typed errors', () => {
    const waiting = (reason: string) =>
      podWith({
        phase: 'Pending',
        containerStatuses: [
          { name: 'sandbox', image: 'img', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message: 'm' } } },
        ],
      });
    expect(kubernetesStartFailure(waiting('InvalidImageName'))).toMatchObject({ code: 'invalid_argument', argument: 'image' });
    expect(kubernetesStartFailure(waiting('ImagePullBackOff'))?.message).toContain('cannot be pulled');
    expect(kubernetesStartFailure(waiting('ContainerCreating'))).toBeUndefined();
    const unschedulable = podWith({
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes: Insufficient cpu' }],
    });
    expect(kubernetesStartFailure(unschedulable)?.message).toContain('Insufficient cpu');
  });

  it('maps the end: keeper exit is the lifetime, entrypoint exit before the deadline, OOM and eviction crash, the hard cap is the lifetime', () => {
    const terminated = (exitCode: number, finishedAt: string, reason = 'Completed') => [
      {
        name: 'sandbox',
        image: 'img',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason, finishedAt: new Date(finishedAt) } },
      },
    ];
    expect(kubernetesEndReason(podWith({ phase: 'Running' }))).toBeUndefined();
    expect(kubernetesEndReason(podWith({ phase: 'Succeeded', containerStatuses: terminated(0, '2026-12-01T12:05:00Z') }))).toEqual({
      state: 'terminated',
      reason: 'lifetime-timeout',
    });
    const deadline = String(Date.UTC(2026, 11, 1, 12, 5) / 1000);
    const entry = { [kubernetesKeys.entrypoint]: '1', [kubernetesKeys.deadline]: deadline };
    expect(
      kubernetesEndReason(podWith({ phase: 'Failed', containerStatuses: terminated(3, '2026-12-01T12:01:00Z', 'Error') }, entry)),
    ).toEqual({
      state: 'terminated',
      reason: 'entrypoint-exited',
      exitCode: 3,
    });
    expect(
      kubernetesEndReason(podWith({ phase: 'Failed', containerStatuses: terminated(137, '2026-12-01T12:01:00Z', 'OOMKilled') })),
    ).toMatchObject({ reason: 'crashed' });
    expect(kubernetesEndReason(podWith({ phase: 'Failed', reason: 'Evicted' }))).toEqual({ state: 'terminated', reason: 'crashed' });
    expect(kubernetesEndReason(podWith({ phase: 'Failed', reason: 'DeadlineExceeded' }))).toEqual({
      state: 'terminated',
      reason: 'lifetime-timeout',
    });
  });
});

describe('checkKubernetesReadBack', () => {
  it('accepts canonicalised quantities and reports mutated limits and security settings', () => {
    const { pod } = plan({ cpu: 1, memoryMiB: 1024 });
    const admitted = structuredClone(pod);
    admitted.spec!.containers[0]!.resources = { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1', memory: '1Gi' } };
    expect(checkKubernetesReadBack(pod, admitted)).toEqual([]);
    admitted.spec!.containers[0]!.resources!.limits!.memory = '512Mi';
    admitted.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation = true;
    admitted.spec!.automountServiceAccountToken = true;
    expect(checkKubernetesReadBack(pod, admitted)).toEqual([
      'resources.limits.memory',
      'securityContext.allowPrivilegeEscalation',
      'spec.automountServiceAccountToken',
    ]);
    expect(quantity('500m')).toBe(0.5);
  });
});
