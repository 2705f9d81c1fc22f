import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import {
  SandboxAlreadyExistsError,
  SandboxCapabilityUnsupportedError,
  SandboxEmitter,
  SandboxNotFoundError,
  SandboxProviderError,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  matchesTags,
  parseOptions,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type SandboxInfo,
  type SandboxProvider,
  type SignalOptions,
} from '../../src/kit/index.js';
import { KubernetesApi, type KubeConfigSource } from './kubernetes-api.js';
import {
  checkKubernetesReadBack,
  kubernetesCapabilities,
  kubernetesKeys,
  kubernetesManagedBy,
  kubernetesMaxTimeoutMs,
  planKubernetesCreate,
  planKubernetesOwnerReference,
  planKubernetesPodName,
  planKubernetesSelector,
  tagsFromKubernetesPod,
  type KubernetesCreatePlan,
} from './kubernetes-options.js';
import { runPlain } from './kubernetes-process.js';
import { KubernetesSandboxImpl, type KubernetesSandbox } from './kubernetes-sandbox.js';
import { kubernetesProbeArgv, kubernetesProbeExit } from './kubernetes-scripts.js';

export { kubernetesCapabilities };

const provider = 'kubernetes';

export interface KubernetesSandboxProviderOptions {
  /**
   * The kube config: a file path or a client-node `KubeConfig`.
   * @default the default locations: `KUBECONFIG`, `~/.kube/config`, the in-cluster service account
   */
  kubeconfig?: string | KubeConfig;
  /** The kube config context to use. @default its current context */
  context?: string;
  /** Namespace of the sandbox pods. @default the context's namespace, else `'default'` */
  namespace?: string;
  /** Image of a create without `image`. @default kubernetesDefaultImage */
  defaultImage?: string;
  /** cpu of a create without `cpu`, in cores (requests = limits). @default 1 */
  defaultCpu?: number;
  /** memory of a create without `memoryMiB`, in MiB (requests = limits). @default 1024 */
  defaultMemoryMiB?: number;
  /**
   * The cluster's pod, service and node CIDRs. With them, `network: 'allow'` is outbound-only: a
   * NetworkPolicy lets the pod reach anything but these ranges and link-local (cloud metadata).
   * @default none: `'allow'` creates no policy
   */
  internalCidrs?: string[];
  /**
   * Skip the enforcement probe: trust that the cluster's network plugin enforces NetworkPolicy.
   * Without it, a create with a restricting policy fails closed when the probe gets through.
   * @default false
   */
  trustNetworkPolicy?: boolean;
  /** How long create waits for the pod to be Ready, in milliseconds. @default 300_000 */
  readyTimeoutMs?: number;
  /** Retries of an idempotent call on transient failures. @default 3 */
  retries?: number;
}

/**
 * Sandboxes as plain Pods on a Kubernetes cluster, through `@kubernetes/client-node` (REST,
 * watch, kube config) and our own exec and port-forward WebSocket client.
 *
 * One hardened pod per sandbox (no service-account token, no service links, seccomp
 * RuntimeDefault, no privilege escalation, capabilities dropped to Docker's set, requests equal
 * to limits); its secrets in a Secret and its network in a NetworkPolicy, both created before
 * the pod and owned by it. The deadline lives in the pod (its PID 1), `activeDeadlineSeconds`
 * is only a 24 h hard cap. A named sandbox's pod name is derived from the name, so the API
 * server's uniqueness refuses a second create atomically.
 */
export class KubernetesSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = provider;
  readonly capabilities = kubernetesCapabilities;
  readonly events = new SandboxEmitter();
  readonly #options: KubernetesSandboxProviderOptions;
  #api: Promise<KubernetesApi> | undefined;

  constructor(options: KubernetesSandboxProviderOptions = {}) {
    this.#options = options;
  }

  /** The API (loads client-node and the kube config on first use). */
  api(): Promise<KubernetesApi> {
    this.#api ??= KubernetesApi.open({
      kubeconfig: this.#options.kubeconfig as KubeConfigSource,
      context: this.#options.context,
      namespace: this.#options.namespace,
      events: this.events,
      retries: this.#options.retries ?? 3,
    });
    const opening = this.#api;
    opening.catch(() => {
      if (this.#api === opening) this.#api = undefined;
    });
    return opening;
  }

  async create(options: CreateSandboxOptions = {}): Promise<KubernetesSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
    const { signal } = parsed;
    signal?.throwIfAborted();
    const api = await this.api();
    const plan = planKubernetesCreate(parsed, {
      namespace: api.namespace,
      image: this.#options.defaultImage,
      cpu: this.#options.defaultCpu,
      memoryMiB: this.#options.defaultMemoryMiB,
      internalCidrs: this.#options.internalCidrs,
    });
    const made: Array<() => Promise<void>> = [];
    const undo = async () => {
      for (const step of made.reverse()) await step().catch(() => undefined);
    };
    let pod: V1Pod | undefined;
    try {
      // Dependents first: no moment where the pod runs without its policy or secrets.
      // Creates run to their answer even when the signal fires meanwhile (an object made on the
      // server must be known to be undone); the signal is checked after each.
      if (plan.secret) {
        made.push(() => api.deleteSecret(plan.secret!.metadata!.name!));
        await api.createSecret(plan.secret);
        signal?.throwIfAborted();
      }
      if (plan.networkPolicy) {
        made.push(() => api.deleteNetworkPolicy(plan.networkPolicy!.metadata!.name!));
        await api.createNetworkPolicy(plan.networkPolicy);
        signal?.throwIfAborted();
      }
      pod = await this.#createPod(api, plan, parsed.name, undefined);
      made.push(() => api.deletePod(plan.podName));
      signal?.throwIfAborted();
      const owner = planKubernetesOwnerReference(pod);
      if (plan.secret) await api.patchSecret(plan.secret.metadata!.name!, owner, signal);
      if (plan.networkPolicy) await api.patchNetworkPolicy(plan.networkPolicy.metadata!.name!, owner, signal);
      const timeout = AbortSignal.timeout(this.#options.readyTimeoutMs ?? 300_000);
      const ready = await api
        .waitReady(plan.podName, pod.metadata?.resourceVersion, signal ? AbortSignal.any([signal, timeout]) : timeout)
        .catch((error: unknown) => {
          if (timeout.aborted && !signal?.aborted)
            throw new SandboxProviderError({
              message: `Pod ${plan.podName} was not ready within ${this.#options.readyTimeoutMs ?? 300_000} ms`,
              provider,
              cause: error,
            });
          throw error;
        });
      const changed = checkKubernetesReadBack(plan.pod, ready);
      if (changed.length > 0)
        throw new SandboxProviderError({
          message: `The cluster changed settings sandport relies on in pod ${plan.podName} (a LimitRange or admission mutator?): ${changed.join(', ')}`,
          provider,
        });
      const sandbox = this.#wrap(api, plan);
      if (plan.probeNetwork && this.#options.trustNetworkPolicy !== true) await this.#probe(sandbox, plan, signal);
      if (plan.entrypoint) await sandbox.startEntrypoint(plan.entrypoint, plan.env, signal);
      // A create that finished after its signal fired must not hand out a running sandbox.
      signal?.throwIfAborted();
      announceCreated(this.events, { provider, sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
      return sandbox;
    } catch (error) {
      await undo();
      throw error;
    }
  }

  /**
   * Creates the pod. A named sandbox's pod name is fixed, so a finished or deleting pod of an
   * earlier sandbox of the name holds it: that one is deleted (or its deletion awaited) and the
   * create tried once more; a live one is `SandboxAlreadyExistsError`.
   */
  async #createPod(
    api: KubernetesApi,
    plan: KubernetesCreatePlan,
    name: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<V1Pod> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await api.createPod(plan.pod, signal);
      } catch (error) {
        if (!SandboxAlreadyExistsError.isInstance(error) || name === undefined) throw error;
        const taken = () => new SandboxAlreadyExistsError({ message: `A sandbox named ${name} exists already`, provider, cause: error });
        const existing = await api.findPod(plan.podName, signal);
        if (attempt > 0 || (existing && isLive(existing))) throw taken();
        if (existing) {
          if (existing.metadata?.deletionTimestamp === undefined) await api.deletePod(plan.podName, signal);
          const gone = AbortSignal.timeout(60_000);
          await api
            .watchPod(plan.podName, undefined, (pod) => pod === undefined, signal ? AbortSignal.any([signal, gone]) : gone)
            .catch((watchError: unknown) => {
              if (signal?.aborted) throw watchError;
              throw taken();
            });
        }
      }
    }
  }

  /**
   * NetworkPolicy is enforced only by network plugins that implement it; elsewhere the object
   * is accepted and nothing happens. From inside the pod, try the API server: reaching it means
   * the policy is not enforced, and the create fails closed.
   */
  async #probe(sandbox: KubernetesSandboxImpl, plan: KubernetesCreatePlan, signal: AbortSignal | undefined): Promise<void> {
    const result = await runPlain(
      { connection: sandbox.native.api.connection, namespace: sandbox.namespace, pod: sandbox.id },
      kubernetesProbeArgv('kubernetes.default.svc', 443),
      signal,
    );
    if (result.exitCode === kubernetesProbeExit.blocked) return;
    const capability = plan.networkPolicy?.spec?.egress?.length ? 'network.allowCidrs' : 'network.block';
    throw new SandboxCapabilityUnsupportedError({
      message:
        result.exitCode === kubernetesProbeExit.reached
          ? `The cluster does not enforce NetworkPolicy (the sandbox reached the API server through its policy): its network plugin lacks NetworkPolicy support. Use a plugin that enforces it, or set trustNetworkPolicy if you know better`
          : `The network policy could not be checked: the image has none of bash, python3, node or nc for the probe (set trustNetworkPolicy to skip it): ${result.stderr.trim()}`,
      capability,
      provider,
    });
  }

  #wrap(api: KubernetesApi, plan: KubernetesCreatePlan): KubernetesSandboxImpl {
    return new KubernetesSandboxImpl({
      api,
      pod: plan.podName,
      name: plan.pod.metadata?.annotations?.[kubernetesKeys.name],
      warnings: plan.warnings,
      events: this.events,
      workdir: plan.workdir,
      ports: plan.ports,
      lifetimeMs: plan.lifetimeMs,
      idleTimeoutMs: plan.idleTimeoutMs,
      capSeconds: plan.capSeconds,
    });
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<KubernetesSandbox> {
    checkStringArgument(id, 'id', provider);
    options.signal?.throwIfAborted();
    const api = await this.api();
    const notFound = (cause?: unknown) =>
      new SandboxNotFoundError({ message: `No running Kubernetes sandbox ${id}`, sandboxId: id, provider, cause });
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(id) || id.length > 253) throw notFound();
    const pod = await api.findPod(id, options.signal);
    if (!pod || !isLive(pod) || pod.metadata?.labels?.[kubernetesKeys.managedBy] !== kubernetesManagedBy) throw notFound();
    return this.#fromPod(api, pod);
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<KubernetesSandbox> {
    checkStringArgument(name, 'name', provider);
    options.signal?.throwIfAborted();
    const api = await this.api();
    const pod = await api.findPod(planKubernetesPodName(name, api.namespace), options.signal);
    if (!pod || !isLive(pod) || pod.metadata?.annotations?.[kubernetesKeys.name] !== name)
      throw new SandboxNotFoundError({ message: `No running sandbox is named ${name}`, name, provider });
    return this.#fromPod(api, pod);
  }

  #fromPod(api: KubernetesApi, pod: V1Pod): KubernetesSandboxImpl {
    const annotations = pod.metadata?.annotations ?? {};
    const container = pod.spec?.containers?.[0];
    const deadline = Number(annotations[kubernetesKeys.deadline]);
    const createdAt = Date.parse(annotations[kubernetesKeys.createdAt] ?? '') || Date.now();
    return new KubernetesSandboxImpl({
      api,
      pod: pod.metadata!.name!,
      name: annotations[kubernetesKeys.name],
      warnings: [],
      events: this.events,
      workdir: container?.workingDir,
      ports: (container?.ports ?? []).map((port) => port.containerPort),
      lifetimeMs: Number.isFinite(deadline) ? deadline * 1000 - Date.now() : undefined,
      idleTimeoutMs: undefined,
      capSeconds: Math.ceil((createdAt + kubernetesMaxTimeoutMs) / 1000),
    });
  }

  /** The live sandbox pods of the namespace carrying every tag of `tags` (labels select, the annotation filters exactly). */
  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider, what: 'list options' });
    parsed.signal?.throwIfAborted();
    const api = await this.api();
    const pods = await api.listPods(planKubernetesSelector(parsed.tags), parsed.signal);
    return pods
      .filter(isLive)
      .map((pod) => ({
        id: pod.metadata!.name!,
        name: pod.metadata?.annotations?.[kubernetesKeys.name],
        tags: tagsFromKubernetesPod(pod),
        createdAt:
          Date.parse(pod.metadata?.annotations?.[kubernetesKeys.createdAt] ?? String(pod.metadata?.creationTimestamp ?? '')) || Date.now(),
      }))
      .filter((info) => matchesTags(info.tags, parsed.tags));
  }

  /**
   * Deletes the finished pods sandport made in the namespace (phase Succeeded or Failed): bare
   * pods stay until the cluster's terminated-pod threshold otherwise. Resolves with how many.
   * Idempotent.
   */
  async cleanup(options: SignalOptions = {}): Promise<number> {
    options.signal?.throwIfAborted();
    const api = await this.api();
    const pods = await api.listPods(planKubernetesSelector(), options.signal);
    const finished = pods.filter((pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed');
    await Promise.all(finished.map((pod) => api.deletePod(pod.metadata!.name!, options.signal)));
    return finished.length;
  }
}

function isLive(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return pod.metadata?.deletionTimestamp === undefined && (phase === 'Running' || phase === 'Pending');
}

/** Creates the Kubernetes provider. Construction does no I/O (the kube config is read at the first call). */
export function createKubernetesSandboxProvider(options: KubernetesSandboxProviderOptions = {}): KubernetesSandboxProvider {
  return new KubernetesSandboxProvider(options);
}
