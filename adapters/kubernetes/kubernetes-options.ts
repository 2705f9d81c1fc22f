/**
 * Neutral options → Kubernetes objects, as pure plans (no I/O), so that every mapping is
 * unit-tested without a cluster: the hardened pod spec (requests equal to limits, the deadline
 * keeper as PID 1, `activeDeadlineSeconds` only as a hard cap), the Secret and NetworkPolicy it
 * owns, the deterministic pod name of a named sandbox, tags as an exact annotation plus hashed
 * labels, the exec Status → exit code, pod status → end reason, start failures → typed errors,
 * and the read-back check of the admitted pod.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1Pod, V1Secret } from '@kubernetes/client-node';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  parseOptions,
  portNumbers,
  refuseUnsupported,
  signalFromExitCode,
  volumeMounts,
  type ExitStatus,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxEnded,
  type SandboxError,
  type SandboxTags,
  type SandboxWarning,
} from '../../src/kit/index.js';
import {
  kubernetesKeeperCommand,
  kubernetesSecretsDirectory,
  kubernetesSecretsKey,
  kubernetesSecretsScript,
} from './kubernetes-scripts.js';

const provider = 'kubernetes';

/** The contract's default lifetime when a create names none (Kubernetes itself has none). */
export const kubernetesDefaultTimeoutMs = 5 * 60 * 1000;
/** Longest lifetime: the pod's `activeDeadlineSeconds` hard cap is creation + this (+ a margin). */
export const kubernetesMaxTimeoutMs = 24 * 60 * 60 * 1000;
/** Seconds the hard cap lies past the longest lifetime, so the keeper always ends first. */
export const kubernetesDeadlineMarginSeconds = 60;
/** The image of a create without `image` (needs sh, coreutils and GNU find for files). */
export const kubernetesDefaultImage = 'docker.io/library/debian:bookworm';
/** Name of the one container of a sandbox pod. */
export const kubernetesContainerName = 'sandbox';
/** Capabilities a sandbox keeps after dropping ALL: the Docker provider's set. */
export const kubernetesKeptCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'];
/** The cluster's link-local range (cloud metadata servers), always outside outbound-only egress. */
const linkLocal = '169.254.0.0/16';

/** Label and annotation keys the adapter owns. */
export const kubernetesKeys = {
  managedBy: 'app.kubernetes.io/managed-by',
  /** The pod's name, so a NetworkPolicy could select one pod. */
  sandbox: 'sandport.dev/sandbox',
  /** A random value per create: what the pod's own NetworkPolicy selects (never another pod of the name). */
  instance: 'sandport.dev/instance',
  /** Prefix of the hashed tag labels: `t.sandport.dev/<hex(sha256(key))[:16]>`. */
  tagPrefix: 't.sandport.dev/',
  tags: 'sandport.dev/tags',
  name: 'sandport.dev/name',
  deadline: 'sandport.dev/deadline',
  createdAt: 'sandport.dev/created-at',
  entrypoint: 'sandport.dev/entrypoint',
} as const;
/** The value of `app.kubernetes.io/managed-by` on everything the adapter creates. */
export const kubernetesManagedBy = 'sandport';

export const kubernetesCapabilities: SandboxCapabilities = Object.freeze({
  // A container under the cluster's runtime (runtimeClassName can make it gVisor or Kata; the
  // flag states the default).
  isolation: 'container',
  // Our own exec client: v5 channels (stdin half-close), the exit code from the status channel;
  // kill is a second exec that signals the marked tree (closing the socket kills nothing). The
  // terminal is the kit's portable one (util-linux `script` in the image), resized by `stty`.
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: true },
  // The kit's inotifywait watcher over exec (needs inotify-tools in the image).
  files: { watch: true },
  // The create `command` runs as an exec this process holds (the keeper is PID 1).
  entrypointStdio: true,
  // Local listeners that port-forward each connection to the pod.
  tunnels: true,
  tunnelsTls: false,
  // Kubernetes has no image snapshot of a running container.
  snapshot: false,
  deleteSnapshot: false,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  pause: false,
  // The keeper's deadline moves, up to the hard cap (creation + 24 h).
  extendTimeout: true,
  // NetworkPolicy is L3/L4: CIDRs yes, domains no; enforced only where the CNI implements it,
  // which the probe at create checks.
  network: { block: true, allowCidrs: true, allowDomains: false, allowlistViaProxy: false, update: false },
  // No per-pod process-count limit exists (the kubelet's podPidsLimit is node-wide).
  limits: { cpu: true, memory: true, pids: false },
  // The lifetime is kept in the pod (the keeper); the idle timer by the creating process.
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: kubernetesMaxTimeoutMs },
  // PersistentVolumeClaims by name.
  volumes: 'named',
  gpu: true,
  images: { reference: true, build: false, snapshot: false },
} as const);

/**
 * `providerOptions.kubernetes` of `create`: Kubernetes settings with no neutral equivalent.
 * - `runtimeClassName`: a RuntimeClass (`gvisor`, `kata`); a class the cluster lacks fails the create.
 * - `nodeSelector`, `tolerations`: where the pod may run (GPU nodes, say).
 * - `labels`, `annotations`: extra pod metadata (keys outside sandport's own).
 * - `serviceAccountName`: a service account for the pod (its token is never mounted).
 * - `gpuResource`: the extended resource a `gpu` count requests. @default 'nvidia.com/gpu'
 * - `imagePullSecrets`: names of Secrets to pull the image with.
 */
export const kubernetesCreateOptionsSchema = z
  .object({
    runtimeClassName: z.string().min(1).optional(),
    nodeSelector: z.record(z.string().min(1), z.string()).optional(),
    tolerations: z.array(z.record(z.string(), z.unknown())).optional(),
    labels: z.record(z.string().min(1), z.string()).optional(),
    annotations: z.record(z.string().min(1), z.string()).optional(),
    serviceAccountName: z.string().min(1).optional(),
    gpuResource: z.string().min(1).optional(),
    imagePullSecrets: z.array(z.string().min(1)).optional(),
  })
  .strict();
export type KubernetesCreateOptions = z.input<typeof kubernetesCreateOptionsSchema>;

/** Provider-level settings the plan needs. */
export interface KubernetesPlanContext {
  namespace: string;
  /** Image when the options name none. @default kubernetesDefaultImage */
  image?: string | undefined;
  /** cpu when the options name none, in cores. @default 1 */
  cpu?: number | undefined;
  /** memory when the options name none, in MiB. @default 1024 */
  memoryMiB?: number | undefined;
  /** The cluster's pod, service and node ranges: outside the egress of `network: 'allow'`. @default none */
  internalCidrs?: readonly string[] | undefined;
  /** Clock, in epoch milliseconds (tests pass a fixed one). @default Date.now() */
  now?: number;
  /** The per-create random value (tests pass a fixed one). @default 8 random base32 characters */
  nonce?: string;
}

export interface KubernetesCreatePlan {
  /** The pod's name: derived from `name`, or random. */
  podName: string;
  pod: V1Pod;
  /** The Secret holding `secrets` (owned by the pod once it exists). */
  secret: V1Secret | undefined;
  /** The pod's NetworkPolicy (owned by the pod once it exists); none for plain `allow` without internal ranges. */
  networkPolicy: V1NetworkPolicy | undefined;
  /** Whether the enforcement probe must run after Ready: the policy restricts egress. */
  probeNetwork: boolean;
  /** The create `command`, run as an exec under the notifier. */
  entrypoint: string[] | undefined;
  /** The env of every exec: the pod's env is in the spec, this is for the entrypoint's exec. */
  env: Record<string, string>;
  workdir: string | undefined;
  ports: number[];
  lifetimeMs: number;
  idleTimeoutMs: number | undefined;
  /** The keeper's deadline and the hard cap, in epoch seconds. */
  deadlineSeconds: number;
  capSeconds: number;
  createdAt: number;
  warnings: SandboxWarning[];
}

const base32Alphabet = 'abcdefghijklmnopqrstuvwxyz234567';

/** Lower-case base32 of bytes (DNS-1123 safe). */
function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += base32Alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += base32Alphabet[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The pod name of a sandbox: `sbx-` + base32(sha256(namespace NUL name))[:20] for a named one, so
 * that the API server's name uniqueness makes a second create of the name fail atomically (409);
 * random otherwise.
 */
export function planKubernetesPodName(name: string | undefined, namespace: string): string {
  if (name === undefined) return `sbx-${base32(randomBytes(13)).slice(0, 20)}`;
  return `sbx-${base32(createHash('sha256').update(`${namespace}\0${name}`).digest()).slice(0, 20)}`;
}

function hex16(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The hashed label of one tag: label values allow 63 of `[A-Za-z0-9._-]`, tags allow anything. */
export function kubernetesTagLabel(key: string, value: string): [string, string] {
  return [`${kubernetesKeys.tagPrefix}${hex16(key)}`, hex16(value)];
}

/** The labels indexing `tags`. */
export function planKubernetesTagLabels(tags: Readonly<SandboxTags>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).map(([key, value]) => kubernetesTagLabel(key, value)));
}

/** A label selector for sandport's pods carrying every tag of `tags` (then filtered exactly by the annotation). */
export function planKubernetesSelector(tags: Readonly<SandboxTags> = {}): string {
  const parts = [`${kubernetesKeys.managedBy}=${kubernetesManagedBy}`];
  for (const [key, value] of Object.values(tags).length === 0 ? [] : Object.entries(tags)) {
    const [label, hashed] = kubernetesTagLabel(key, value);
    parts.push(`${label}=${hashed}`);
  }
  return parts.join(',');
}

/** The exact tags of a pod, from its annotation (`{}` when absent or unreadable). */
export function tagsFromKubernetesPod(pod: V1Pod): SandboxTags {
  const raw = pod.metadata?.annotations?.[kubernetesKeys.tags];
  if (raw === undefined) return {};
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  } catch {
    return {};
  }
}

/**
 * The merge patch replacing a pod's tags: the annotation rewritten, labels of removed tags set to
 * `null`, labels of the new ones set. Idempotent.
 */
export function planKubernetesTagUpdate(current: V1Pod, tags: Readonly<SandboxTags>): { metadata: Record<string, unknown> } {
  const labels: Record<string, string | null> = {};
  for (const key of Object.keys(current.metadata?.labels ?? {})) if (key.startsWith(kubernetesKeys.tagPrefix)) labels[key] = null;
  Object.assign(labels, planKubernetesTagLabels(tags));
  return { metadata: { labels, annotations: { [kubernetesKeys.tags]: JSON.stringify(tags) } } };
}

/** `gpu` (`'A100'`, `'T4:2'`, `'2'`) as a count; the type cannot be selected portably (nodeSelector does). */
export function planKubernetesGpu(gpu: string): { count: number; type: string | undefined } {
  const match = /^(?:([^:]+):)?(\d+)$/.exec(gpu);
  if (match) return { count: Number(match[2]), type: match[1] };
  if (/^[^:]+$/.test(gpu)) return { count: 1, type: gpu };
  throw new SandboxInvalidArgumentError({
    message: `gpu must be "<count>", "<type>" or "<type>:<count>", got ${gpu}`,
    argument: 'gpu',
    provider,
  });
}

/** `cpu` in cores as a Kubernetes quantity of millicores (`0.5` → `500m`). */
export function planKubernetesCpu(cpu: number): string {
  return `${Math.max(1, Math.ceil(cpu * 1000))}m`;
}

/**
 * The NetworkPolicy of a sandbox pod, selecting it by its per-create instance label. Ingress is
 * always denied (port-forward traffic starts inside the pod's network namespace). `block`: no
 * egress at all; CIDRs: egress to them only; `allow` with internal ranges: egress anywhere but
 * those ranges and link-local; `allow` without internal ranges: no policy (nothing to restrict
 * but ingress, which the caller asked to keep open). DNS stays open for CIDR allowlists.
 */
export function planKubernetesNetworkPolicy(
  network: ParsedCreateSandboxOptions['network'],
  names: { policyName: string; namespace: string; instance: string },
  internalCidrs: readonly string[] = [],
): { policy: V1NetworkPolicy | undefined; probe: boolean } {
  const dns = {
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  };
  let egress: NonNullable<NonNullable<V1NetworkPolicy['spec']>['egress']>;
  let probe = true;
  if (network === 'block') egress = [];
  else if (typeof network === 'object') {
    if (network.allowDomains.length > 0)
      throw new SandboxCapabilityUnsupportedError({
        message: 'The kubernetes provider cannot enforce a domain allowlist (NetworkPolicy is L3/L4); use allowCidrs',
        capability: 'network.allowDomains',
        provider,
      });
    egress =
      network.allowCidrs.length === 0 ? [] : [{ to: network.allowCidrs.map((cidr): V1NetworkPolicyPeer => ({ ipBlock: { cidr } })) }, dns];
  } else {
    if (internalCidrs.length === 0) return { policy: undefined, probe: false };
    const v4 = internalCidrs.filter((cidr) => !cidr.includes(':'));
    const v6 = internalCidrs.filter((cidr) => cidr.includes(':'));
    egress = [
      {
        to: [
          { ipBlock: { cidr: '0.0.0.0/0', except: [...v4, linkLocal] } },
          { ipBlock: { cidr: '::/0', ...(v6.length ? { except: v6 } : {}) } },
        ],
      },
      dns,
    ];
    // Outbound-only: the probe's target (the API server) is inside the internal ranges.
    probe = true;
  }
  return {
    policy: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: names.policyName,
        namespace: names.namespace,
        labels: { [kubernetesKeys.managedBy]: kubernetesManagedBy },
      },
      spec: {
        podSelector: { matchLabels: { [kubernetesKeys.instance]: names.instance } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress,
      },
    },
    probe,
  };
}

/** Turns neutral create options into the pod, its Secret and NetworkPolicy. Throws typed errors for what Kubernetes cannot honour. */
export function planKubernetesCreate(options: ParsedCreateSandboxOptions, context: KubernetesPlanContext): KubernetesCreatePlan {
  const warnings = refuseUnsupported(options, kubernetesCapabilities, provider);
  const extra = parseOptions(kubernetesCreateOptionsSchema, (options.providerOptions as Record<string, unknown> | undefined)?.kubernetes, {
    provider,
    what: 'providerOptions.kubernetes',
  });
  const { namespace } = context;
  const now = context.now ?? Date.now();
  const nonce = context.nonce ?? base32(randomBytes(5)).slice(0, 8);
  const podName = planKubernetesPodName(options.name, namespace);
  const lifetimeMs = options.timeoutMs ?? kubernetesDefaultTimeoutMs;
  const deadlineSeconds = Math.ceil((now + lifetimeMs) / 1000);
  const capSeconds = Math.ceil((now + kubernetesMaxTimeoutMs) / 1000);
  const image = typeof options.image === 'string' ? options.image : (context.image ?? kubernetesDefaultImage);
  const ports = portNumbers(options.ports, provider);
  const tags = options.tags ?? {};

  const cpu = planKubernetesCpu(options.cpu ?? context.cpu ?? 1);
  const memory = `${options.memoryMiB ?? context.memoryMiB ?? 1024}Mi`;
  const resources: Record<string, string> = { cpu, memory };
  if (options.gpu !== undefined) {
    const gpu = planKubernetesGpu(options.gpu);
    resources[extra.gpuResource ?? 'nvidia.com/gpu'] = String(gpu.count);
    if (gpu.type !== undefined && extra.nodeSelector === undefined)
      warnings.push({
        type: 'unsupported-setting',
        setting: 'gpu',
        details: `Kubernetes requests GPUs by count: the type ${gpu.type} is not selected (set providerOptions.kubernetes.nodeSelector)`,
      });
  }

  for (const key of [...Object.keys(extra.labels ?? {}), ...Object.keys(extra.annotations ?? {})]) {
    if (key.includes('sandport.dev/') || key === kubernetesKeys.managedBy)
      throw new SandboxInvalidArgumentError({
        message: `providerOptions.kubernetes: ${key} is reserved by sandport`,
        argument: 'providerOptions.kubernetes',
        provider,
      });
  }

  const secretName = `${podName}-env-${nonce}`;
  const hasSecrets = options.secrets !== undefined && Object.keys(options.secrets).length > 0;
  const secret: V1Secret | undefined = hasSecrets
    ? {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: secretName, namespace, labels: { [kubernetesKeys.managedBy]: kubernetesManagedBy } },
        type: 'Opaque',
        stringData: { [kubernetesSecretsKey]: kubernetesSecretsScript(options.secrets!) },
      }
    : undefined;
  const { policy: networkPolicy, probe: probeNetwork } = planKubernetesNetworkPolicy(
    options.network,
    { policyName: `${podName}-net-${nonce}`, namespace, instance: nonce },
    context.internalCidrs,
  );

  const mounts = volumeMounts(options.volumes);
  const volumes: NonNullable<NonNullable<V1Pod['spec']>['volumes']> = mounts.map((mount, index) => ({
    name: `vol-${index}`,
    persistentVolumeClaim: { claimName: mount.source, ...(mount.readOnly ? { readOnly: true } : {}) },
  }));
  const volumeMountsSpec = mounts.map((mount, index) => ({
    name: `vol-${index}`,
    mountPath: mount.target,
    ...(mount.readOnly ? { readOnly: true } : {}),
  }));
  if (secret) {
    volumes.push({ name: 'sandport-secrets', secret: { secretName, defaultMode: 0o400 } });
    volumeMountsSpec.push({ name: 'sandport-secrets', mountPath: kubernetesSecretsDirectory, readOnly: true });
  }

  const annotations: Record<string, string> = {
    ...extra.annotations,
    [kubernetesKeys.tags]: JSON.stringify(tags),
    [kubernetesKeys.deadline]: String(deadlineSeconds),
    [kubernetesKeys.createdAt]: new Date(now).toISOString(),
    ...(options.name === undefined ? {} : { [kubernetesKeys.name]: options.name }),
    ...(options.command === undefined ? {} : { [kubernetesKeys.entrypoint]: '1' }),
  };
  const env = options.env ?? {};
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName,
      namespace,
      labels: {
        ...extra.labels,
        [kubernetesKeys.managedBy]: kubernetesManagedBy,
        [kubernetesKeys.sandbox]: podName,
        [kubernetesKeys.instance]: nonce,
        ...planKubernetesTagLabels(tags),
      },
      annotations,
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 2,
      // A hard cap only: the API server lets it shrink, never grow. The keeper holds the real deadline.
      activeDeadlineSeconds: kubernetesMaxTimeoutMs / 1000 + kubernetesDeadlineMarginSeconds,
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      ...(extra.runtimeClassName === undefined ? {} : { runtimeClassName: extra.runtimeClassName }),
      ...(extra.nodeSelector === undefined ? {} : { nodeSelector: extra.nodeSelector }),
      ...(extra.tolerations === undefined ? {} : { tolerations: extra.tolerations as NonNullable<V1Pod['spec']>['tolerations'] }),
      ...(extra.serviceAccountName === undefined ? {} : { serviceAccountName: extra.serviceAccountName }),
      ...(extra.imagePullSecrets === undefined ? {} : { imagePullSecrets: extra.imagePullSecrets.map((name) => ({ name })) }),
      containers: [
        {
          name: kubernetesContainerName,
          image,
          command: kubernetesKeeperCommand(deadlineSeconds, options.workdir),
          ...(Object.keys(env).length === 0 ? {} : { env: Object.entries(env).map(([name, value]) => ({ name, value })) }),
          ...(options.workdir === undefined ? {} : { workingDir: options.workdir }),
          ...(ports.length === 0 ? {} : { ports: ports.map((containerPort) => ({ containerPort, protocol: 'TCP' })) }),
          resources: { requests: { ...resources }, limits: { ...resources } },
          securityContext: {
            allowPrivilegeEscalation: false,
            privileged: false,
            capabilities: { drop: ['ALL'], add: [...kubernetesKeptCapabilities] },
          },
          ...(volumeMountsSpec.length === 0 ? {} : { volumeMounts: volumeMountsSpec }),
        },
      ],
      ...(volumes.length === 0 ? {} : { volumes }),
    },
  };
  return {
    podName,
    pod,
    secret,
    networkPolicy,
    probeNetwork,
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    env,
    workdir: options.workdir,
    ports,
    lifetimeMs,
    idleTimeoutMs: options.idleTimeoutMs,
    deadlineSeconds,
    capSeconds,
    createdAt: now,
    warnings,
  };
}

/** The ownerReference that makes a dependent go with its pod (the garbage collector deletes it). */
export function planKubernetesOwnerReference(pod: V1Pod): { metadata: { ownerReferences: unknown[] } } {
  return {
    metadata: {
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid!, blockOwnerDeletion: false }],
    },
  };
}

/**
 * What the cluster changed in the admitted pod that sandport relies on (limits, the network
 * selector, the security settings): LimitRange and Pod Security mutators can rewrite them.
 * Empty when nothing was. Quantities are compared as the API server canonicalises them.
 */
export function checkKubernetesReadBack(sent: V1Pod, admitted: V1Pod): string[] {
  const changed: string[] = [];
  const same = (path: string, a: unknown, b: unknown) => {
    if (JSON.stringify(normalise(a)) !== JSON.stringify(normalise(b))) changed.push(path);
  };
  const [sentContainer] = sent.spec?.containers ?? [];
  const admittedContainer = admitted.spec?.containers?.find((container) => container.name === kubernetesContainerName);
  if (!sentContainer || !admittedContainer) return ['spec.containers'];
  for (const kind of ['limits', 'requests'] as const) {
    const want = sentContainer.resources?.[kind] ?? {};
    const got = admittedContainer.resources?.[kind] ?? {};
    for (const key of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (quantity(want[key]) !== quantity(got[key])) changed.push(`resources.${kind}.${key}`);
    }
  }
  const wantSecurity = sentContainer.securityContext ?? {};
  const gotSecurity = admittedContainer.securityContext ?? {};
  same('securityContext.allowPrivilegeEscalation', wantSecurity.allowPrivilegeEscalation, gotSecurity.allowPrivilegeEscalation);
  same('securityContext.privileged', wantSecurity.privileged ?? false, gotSecurity.privileged ?? false);
  same('securityContext.capabilities', sortCapabilities(wantSecurity.capabilities), sortCapabilities(gotSecurity.capabilities));
  same('securityContext.runAsUser', wantSecurity.runAsUser, gotSecurity.runAsUser);
  same('spec.automountServiceAccountToken', sent.spec?.automountServiceAccountToken, admitted.spec?.automountServiceAccountToken);
  same('spec.hostNetwork', sent.spec?.hostNetwork ?? false, admitted.spec?.hostNetwork ?? false);
  same('spec.hostPID', sent.spec?.hostPID ?? false, admitted.spec?.hostPID ?? false);
  same('spec.runtimeClassName', sent.spec?.runtimeClassName, admitted.spec?.runtimeClassName);
  same('spec.securityContext.seccompProfile', sent.spec?.securityContext?.seccompProfile, admitted.spec?.securityContext?.seccompProfile);
  same(
    `metadata.labels.${kubernetesKeys.instance}`,
    sent.metadata?.labels?.[kubernetesKeys.instance],
    admitted.metadata?.labels?.[kubernetesKeys.instance],
  );
  return changed;
}

function sortCapabilities(capabilities: { add?: string[]; drop?: string[] } | undefined): unknown {
  return { add: [...(capabilities?.add ?? [])].sort(), drop: [...(capabilities?.drop ?? [])].sort() };
}

function normalise(value: unknown): unknown {
  return value === undefined ? null : value;
}

const quantitySuffixes: Record<string, number> = {
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** A Kubernetes quantity as a number (`'500m'` → 0.5, `'1Gi'` → 2^30); absent → undefined. */
export function quantity(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  const match = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(value.trim());
  if (!match) return Number.NaN;
  return Number(match[1]) * quantitySuffixes[match[2] ?? '']!;
}

/** A `metav1.Status` from the exec status channel. */
export interface KubernetesExecStatus {
  status?: string;
  reason?: string;
  message?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

/**
 * The exit status of an exec from its Status frame: `Success` is 0; `NonZeroExitCode` carries the
 * code in `causes[reason=ExitCode]`; 128+n is death by signal n (the shell's convention). Any
 * other Status is an error of the exec itself (`undefined`: the caller reports it).
 */
export function parseKubernetesExitStatus(status: KubernetesExecStatus): ExitStatus | undefined {
  if (status.status === 'Success') return { exitCode: 0, signal: undefined };
  if (status.reason !== 'NonZeroExitCode') return undefined;
  const cause = status.details?.causes?.find((entry) => entry.reason === 'ExitCode');
  const code = Number(cause?.message);
  if (!Number.isInteger(code)) return undefined;
  return { exitCode: code, signal: signalFromExitCode(code) };
}

/** Waiting reasons of a container that will not start by itself. */
const pullFailures = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'RegistryUnavailable']);
const configFailures = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'CrashLoopBackOff']);

/**
 * Why a pending pod will never become Ready (`undefined`: it may still): an image that cannot be
 * pulled or named, no node that fits, a missing RuntimeClass, a container that cannot be created,
 * or a pod that ended before it was Ready.
 */
export function kubernetesStartFailure(pod: V1Pod): SandboxError | undefined {
  const status = pod.status ?? {};
  const image = pod.spec?.containers?.[0]?.image ?? '';
  for (const container of status.containerStatuses ?? []) {
    const waiting = container.state?.waiting;
    if (!waiting?.reason) continue;
    if (waiting.reason === 'InvalidImageName')
      return new SandboxInvalidArgumentError({
        message: `Invalid image name ${image}: ${waiting.message ?? ''}`.trim(),
        argument: 'image',
        provider,
      });
    if (pullFailures.has(waiting.reason))
      return new SandboxProviderError({
        message: `The image ${image} cannot be pulled (${waiting.reason}): ${waiting.message ?? ''}`.trim(),
        provider,
      });
    if (configFailures.has(waiting.reason))
      return new SandboxProviderError({
        message: `The container cannot start (${waiting.reason}): ${waiting.message ?? ''}`.trim(),
        provider,
      });
  }
  const scheduled = status.conditions?.find((condition) => condition.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable')
    return new SandboxProviderError({
      message: `No node fits the sandbox (cpu, memory, gpu or selectors): ${scheduled.message ?? 'Unschedulable'}`,
      provider,
    });
  if (status.phase === 'Failed' || status.phase === 'Succeeded') {
    const terminated = status.containerStatuses?.[0]?.state?.terminated;
    if (status.reason === 'UnexpectedAdmissionError' || /RuntimeClass/i.test(status.message ?? ''))
      return new SandboxProviderError({ message: `The pod was refused by its node: ${status.message ?? status.reason}`, provider });
    return new SandboxProviderError({
      message:
        `The pod ended before it was ready (${status.reason ?? terminated?.reason ?? status.phase}${terminated ? `, exit ${terminated.exitCode}` : ''}): ${status.message ?? terminated?.message ?? ''}`.trim(),
      provider,
    });
  }
  return undefined;
}

/** Whether the pod's container is Ready. */
export function kubernetesPodReady(pod: V1Pod): boolean {
  if (pod.status?.phase !== 'Running') return false;
  const ready = pod.status.conditions?.find((condition) => condition.type === 'Ready');
  if (ready) return ready.status === 'True';
  return pod.status.containerStatuses?.every((container) => container.ready) ?? false;
}

/**
 * How a sandbox ended, from its pod (`undefined`: it has not): the keeper exiting 0 is the
 * lifetime (or, with an entrypoint, the entrypoint's own exit unless the deadline had passed);
 * `DeadlineExceeded` is the hard cap; `OOMKilled` and `Evicted` crashed it; a pod being deleted
 * was terminated.
 */
export function kubernetesEndReason(pod: V1Pod): SandboxEnded | undefined {
  const status = pod.status ?? {};
  if (pod.metadata?.deletionTimestamp && status.phase !== 'Succeeded' && status.phase !== 'Failed')
    return { state: 'terminated', reason: 'terminated' };
  if (status.phase !== 'Succeeded' && status.phase !== 'Failed') return undefined;
  if (status.reason === 'DeadlineExceeded') return { state: 'terminated', reason: 'lifetime-timeout' };
  if (status.reason === 'Evicted') return { state: 'terminated', reason: 'crashed' };
  const terminated = status.containerStatuses?.find((container) => container.name === kubernetesContainerName)?.state?.terminated;
  // cgroup v2 kills the whole container on OOM (memory.oom.group), so an exec's OOM ends it all.
  if (terminated?.reason === 'OOMKilled') return { state: 'terminated', reason: 'crashed', exitCode: terminated.exitCode };
  const exitCode = terminated?.exitCode;
  const hasEntrypoint = pod.metadata?.annotations?.[kubernetesKeys.entrypoint] === '1';
  const deadline = Number(pod.metadata?.annotations?.[kubernetesKeys.deadline]);
  const finishedAt = terminated?.finishedAt === undefined ? Number.NaN : new Date(terminated.finishedAt).getTime() / 1000;
  const pastDeadline = Number.isFinite(deadline) && Number.isFinite(finishedAt) && finishedAt >= deadline;
  if (hasEntrypoint && !pastDeadline) return { state: 'terminated', reason: 'entrypoint-exited', exitCode: exitCode ?? 0 };
  // The keeper exits 0 at its deadline; anything else killed it.
  if (exitCode === 0 || exitCode === undefined) return { state: 'terminated', reason: 'lifetime-timeout' };
  if (exitCode === 143) return { state: 'terminated', reason: 'terminated' };
  return { state: 'terminated', reason: 'crashed', exitCode };
}
