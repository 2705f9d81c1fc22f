/**
 * The REST and watch calls the adapter makes, on `@kubernetes/client-node` (loaded lazily: an
 * optional peer), each mapped to a sandport error with the library's `ApiException` kept as
 * `cause`; idempotent reads are retried on transient failures. Exec and port-forward go through
 * our own client (`kubernetes-exec-client.ts`), with the same kube config.
 */
import type * as KubernetesClient from '@kubernetes/client-node';
import type { CoreV1Api, KubeConfig, NetworkingV1Api, V1NetworkPolicy, V1Pod, V1Secret } from '@kubernetes/client-node';
import {
  type SandboxError,
  SandboxNotFoundError,
  SandboxProviderError,
  loadOptionalPeer,
  raceWithSignal,
  retryIdempotent,
  type SandboxEmitter,
} from '../../src/kit/index.js';
import type { KubernetesConnection, WebSocketClass } from './kubernetes-exec-client.js';
import { mapKubernetesError, type KubernetesErrorContext } from './kubernetes-errors.js';
import { kubernetesStartFailure, kubernetesPodReady } from './kubernetes-options.js';

const provider = 'kubernetes';
const installLine = 'npm install @kubernetes/client-node@~1.4.0 ws';

let loadedClient: typeof KubernetesClient | undefined;
let loadedWs: WebSocketClass | undefined;

/** Loads `@kubernetes/client-node` (1.4: the 2.x line does not load on Node 20) on first need. */
export async function loadKubernetesClient(): Promise<typeof KubernetesClient> {
  loadedClient ??= await loadOptionalPeer<typeof KubernetesClient>('@kubernetes/client-node', {
    provider,
    installLine,
    load: () => import('@kubernetes/client-node'),
  });
  return loadedClient;
}

async function loadWs(): Promise<WebSocketClass> {
  loadedWs ??= (await loadOptionalPeer<{ default: WebSocketClass }>('ws', { provider, installLine, load: () => import('ws') })).default;
  return loadedWs;
}

/** Where the kube config comes from. */
export type KubeConfigSource = string | KubeConfig | undefined;

/**
 * The kube config: a `KubeConfig` as given, a file path, or the default locations (`KUBECONFIG`,
 * `~/.kube/config`, the in-cluster service account). client-node silently falls back to
 * `http://localhost:8080` when it finds nothing: that is refused here, naming where it looked.
 */
export async function resolveKubeConfig(source: KubeConfigSource, context: string | undefined): Promise<KubeConfig> {
  const client = await loadKubernetesClient();
  if (source instanceof client.KubeConfig || (typeof source === 'object' && source !== null)) {
    const given = source as KubeConfig;
    if (context !== undefined) given.setCurrentContext(context);
    return given;
  }
  const config = new client.KubeConfig();
  try {
    if (typeof source === 'string') config.loadFromFile(source);
    else config.loadFromDefault();
  } catch (error) {
    throw new SandboxProviderError({
      message: `The kube config ${typeof source === 'string' ? source : 'from the default locations'} could not be loaded: ${(error as Error).message}`,
      provider,
      cause: error,
    });
  }
  if (context !== undefined) config.setCurrentContext(context);
  const cluster = config.getCurrentCluster();
  if (!cluster || (typeof source !== 'string' && config.getContexts().length === 0 && cluster.server === 'http://localhost:8080')) {
    throw new SandboxProviderError({
      message: 'No Kubernetes cluster is configured: pass kubeconfig (a path or a KubeConfig), set KUBECONFIG, or write ~/.kube/config',
      provider,
    });
  }
  return config;
}

/** The namespaced calls one provider makes. */
export class KubernetesApi {
  readonly connection: KubernetesConnection;

  private constructor(
    readonly client: typeof KubernetesClient,
    readonly kubeConfig: KubeConfig,
    readonly core: CoreV1Api,
    readonly networking: NetworkingV1Api,
    readonly namespace: string,
    WebSocket: WebSocketClass,
    private readonly events: SandboxEmitter,
    private readonly retries: number,
  ) {
    this.connection = { kubeConfig, WebSocket };
  }

  static async open(options: {
    kubeconfig: KubeConfigSource;
    context: string | undefined;
    namespace: string | undefined;
    events: SandboxEmitter;
    retries: number;
  }): Promise<KubernetesApi> {
    const client = await loadKubernetesClient();
    const kubeConfig = await resolveKubeConfig(options.kubeconfig, options.context);
    const WebSocket = await loadWs();
    const namespace = options.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'default';
    return new KubernetesApi(
      client,
      kubeConfig,
      kubeConfig.makeApiClient(client.CoreV1Api),
      kubeConfig.makeApiClient(client.NetworkingV1Api),
      namespace,
      WebSocket,
      options.events,
      options.retries,
    );
  }

  /** Runs one call with error mapping (and retries when idempotent) and the caller's signal. */
  async call<T>(
    context: KubernetesErrorContext,
    body: () => Promise<T>,
    options: { idempotent?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const once = async () => {
      try {
        return await body();
      } catch (error) {
        throw mapKubernetesError(error, context);
      }
    };
    const run = options.idempotent
      ? retryIdempotent(context.operation, once, { provider, events: this.events, signal: options.signal, retries: this.retries })
      : once();
    return raceWithSignal(run, { signal: options.signal, operation: context.operation, provider });
  }

  mergePatch() {
    return this.client.setHeaderOptions('Content-Type', this.client.PatchStrategy.MergePatch);
  }

  createPod(pod: V1Pod, signal?: AbortSignal): Promise<V1Pod> {
    return this.call(
      { operation: 'create', argument: 'create options' },
      () => this.core.createNamespacedPod({ namespace: this.namespace, body: pod }),
      { signal },
    );
  }

  getPod(name: string, signal?: AbortSignal): Promise<V1Pod> {
    return this.call({ operation: 'get', sandboxId: name }, () => this.core.readNamespacedPod({ namespace: this.namespace, name }), {
      idempotent: true,
      signal,
    });
  }

  /** The pod, or `undefined` when it does not exist. */
  async findPod(name: string, signal?: AbortSignal): Promise<V1Pod | undefined> {
    try {
      return await this.getPod(name, signal);
    } catch (error) {
      if (SandboxNotFoundError.isInstance(error)) return undefined;
      throw error;
    }
  }

  listPods(labelSelector: string, signal?: AbortSignal): Promise<V1Pod[]> {
    return this.call(
      { operation: 'list' },
      async () => (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector })).items,
      { idempotent: true, signal },
    );
  }

  patchPod(name: string, body: unknown, signal?: AbortSignal): Promise<V1Pod> {
    // A merge patch of labels and annotations gives the same result twice: safe to retry.
    return this.call(
      { operation: 'patch', sandboxId: name },
      () => this.core.patchNamespacedPod({ namespace: this.namespace, name, body }, this.mergePatch()),
      { idempotent: true, signal },
    );
  }

  /** Deletes the pod at once (grace 0, dependents in the background); resolves when it was already gone. */
  async deletePod(name: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.call(
        { operation: 'terminate', sandboxId: name },
        () => this.core.deleteNamespacedPod({ namespace: this.namespace, name, gracePeriodSeconds: 0, propagationPolicy: 'Background' }),
        { idempotent: true, signal },
      );
    } catch (error) {
      if (!SandboxNotFoundError.isInstance(error)) throw error;
    }
  }

  createSecret(secret: V1Secret, signal?: AbortSignal): Promise<V1Secret> {
    return this.call(
      { operation: 'create (secrets)', notFound: 'The namespace' },
      () => this.core.createNamespacedSecret({ namespace: this.namespace, body: secret }),
      { signal },
    );
  }

  patchSecret(name: string, body: unknown, signal?: AbortSignal): Promise<V1Secret> {
    return this.call(
      { operation: 'create (secret owner)', notFound: `The Secret ${name}` },
      () => this.core.patchNamespacedSecret({ namespace: this.namespace, name, body }, this.mergePatch()),
      { idempotent: true, signal },
    );
  }

  async deleteSecret(name: string): Promise<void> {
    await this.core.deleteNamespacedSecret({ namespace: this.namespace, name }).catch(() => undefined);
  }

  createNetworkPolicy(policy: V1NetworkPolicy, signal?: AbortSignal): Promise<V1NetworkPolicy> {
    return this.call(
      { operation: 'create (network policy)', notFound: 'The namespace or the NetworkPolicy API' },
      () => this.networking.createNamespacedNetworkPolicy({ namespace: this.namespace, body: policy }),
      { signal },
    );
  }

  patchNetworkPolicy(name: string, body: unknown, signal?: AbortSignal): Promise<V1NetworkPolicy> {
    return this.call(
      { operation: 'create (network policy owner)', notFound: `The NetworkPolicy ${name}` },
      () => this.networking.patchNamespacedNetworkPolicy({ namespace: this.namespace, name, body }, this.mergePatch()),
      { idempotent: true, signal },
    );
  }

  async deleteNetworkPolicy(name: string): Promise<void> {
    await this.networking.deleteNamespacedNetworkPolicy({ namespace: this.namespace, name }).catch(() => undefined);
  }

  /**
   * Watches one pod (from `resourceVersion`) and calls `onEvent` for each change until it returns
   * true, the signal aborts, or the pod is deleted (`onEvent(undefined)`). A watch the server
   * ends (its timeout) is resumed from the last version; a stale version (410) re-reads the pod.
   * Resolves with what `onEvent` returned true for.
   */
  async watchPod(
    name: string,
    resourceVersion: string | undefined,
    onEvent: (pod: V1Pod | undefined) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const watch = new this.client.Watch(this.kubeConfig);
    const path = `/api/v1/namespaces/${this.namespace}/pods`;
    let version = resourceVersion;
    for (;;) {
      signal?.throwIfAborted();
      if (version === undefined) {
        const pod = await this.findPod(name, signal);
        if (onEvent(pod) || pod === undefined) return;
        version = pod.metadata?.resourceVersion;
      }
      const outcome = await new Promise<'done' | 'again' | 'stale'>((resolve, reject) => {
        let controller: AbortController | undefined;
        let finished = false;
        const finish = (value: 'done' | 'again' | 'stale') => {
          if (finished) return;
          finished = true;
          signal?.removeEventListener('abort', onAbort);
          controller?.abort();
          resolve(value);
        };
        const onAbort = () => {
          finished = true;
          controller?.abort();
          reject(signal!.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        watch
          .watch(
            path,
            { fieldSelector: `metadata.name=${name}`, resourceVersion: version, allowWatchBookmarks: true, timeoutSeconds: 300 },
            (type: string, object: V1Pod & { code?: number }) => {
              if (finished) return;
              if (type === 'ERROR') return finish(object.code === 410 ? 'stale' : 'again');
              if (object.metadata?.resourceVersion) version = object.metadata.resourceVersion;
              if (type === 'BOOKMARK') return;
              if (type === 'DELETED') {
                onEvent(undefined);
                return finish('done');
              }
              if (onEvent(object)) finish('done');
            },
            (error: unknown) => {
              if (finished) return;
              if (error && !(error instanceof Error && error.name === 'AbortError')) {
                const status = (error as { statusCode?: number; code?: number }).statusCode ?? (error as { code?: number }).code;
                if (status === 410) return finish('stale');
              }
              finish('again');
            },
          )
          .then(
            (abort) => {
              controller = abort;
              if (finished) abort.abort();
            },
            (error: unknown) => {
              if (finished) return;
              finished = true;
              signal?.removeEventListener('abort', onAbort);
              reject(mapKubernetesError(error, { operation: 'watch', sandboxId: name }));
            },
          );
      });
      if (outcome === 'done') return;
      if (outcome === 'stale') version = undefined;
    }
  }

  /**
   * Waits until the pod is Ready, by watching. Rejects with the typed start failure (image,
   * scheduling, admission, an early end), `SandboxNotFoundError` when it was deleted meanwhile,
   * or `signal.reason`.
   */
  async waitReady(name: string, resourceVersion: string | undefined, signal?: AbortSignal): Promise<V1Pod> {
    let ready: V1Pod | undefined;
    let failure: SandboxError | undefined;
    let gone = false;
    await this.watchPod(
      name,
      resourceVersion,
      (pod) => {
        if (!pod) {
          gone = true;
          return true;
        }
        if (kubernetesPodReady(pod)) {
          ready = pod;
          return true;
        }
        failure = kubernetesStartFailure(pod);
        return failure !== undefined;
      },
      signal,
    );
    if (failure) throw failure;
    if (gone || !ready)
      throw new SandboxNotFoundError({ message: `Pod ${name} was deleted before it was ready`, sandboxId: name, provider });
    return ready;
  }
}
