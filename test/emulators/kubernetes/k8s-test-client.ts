/**
 * Helpers the emulator's tests share: a client-node `KubeConfig` for an emulator, waiting on a
 * pod's status through a watch (never a sleep), and reading `ApiException` bodies.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';

export function kubeConfigFor(kubeconfigPath: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath);
  return config;
}

/** The `Status` an `ApiException` carries (client-node 1.4 keeps the body as a JSON string). */
export function statusOf(error: unknown): { code: number; reason?: string; message?: string; details?: Record<string, unknown> } {
  const failure = error as { code?: number; body?: unknown };
  const body =
    typeof failure.body === 'string'
      ? (JSON.parse(failure.body) as Record<string, unknown>)
      : ((failure.body ?? {}) as Record<string, unknown>);
  return { code: failure.code ?? 0, ...(body as object) } as never;
}

/** Rejects with the thrown error's Status, or fails when `call` resolves. */
export async function rejection(call: Promise<unknown>): Promise<ReturnType<typeof statusOf>> {
  try {
    await call;
  } catch (error) {
    return statusOf(error);
  }
  throw new Error('the call resolved; a Status error was expected');
}

/**
 * Resolves with the pod once `done(pod)` holds, watching it by name (the first event is its
 * current state); rejects after `timeoutMs` with the last state seen.
 */
export async function waitForPod(
  config: KubeConfig,
  namespace: string,
  name: string,
  done: (pod: V1Pod) => boolean,
  timeoutMs = 60_000,
): Promise<V1Pod> {
  const current = await config.makeApiClient(CoreV1Api).readNamespacedPod({ namespace, name });
  if (done(current)) return current;
  let last: V1Pod = current;
  let controller: AbortController | undefined;
  try {
    return await new Promise<V1Pod>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pod ${name} never got there; last status ${JSON.stringify(last.status)}`)),
        timeoutMs,
      );
      void new Watch(config)
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { fieldSelector: `metadata.name=${name}` },
          (type, pod: V1Pod) => {
            last = pod;
            if (type !== 'DELETED' && done(pod)) {
              clearTimeout(timer);
              resolve(pod);
            }
          },
          (error) => {
            if (error) reject(error as Error);
          },
        )
        .then((started) => (controller = started), reject);
    });
  } finally {
    controller?.abort();
  }
}

export const isRunning = (pod: V1Pod) => pod.status?.phase === 'Running';
export const hasEnded = (pod: V1Pod) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/** A minimal pod: one container `main` on the host image. */
export function podBody(
  name: string,
  extra: { labels?: Record<string, string>; command?: string[]; spec?: Record<string, unknown>; container?: Record<string, unknown> } = {},
): V1Pod {
  return {
    metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}) },
    spec: {
      restartPolicy: 'Never',
      containers: [
        { name: 'main', image: 'debian:bookworm-slim', ...(extra.command ? { command: extra.command } : {}), ...extra.container },
      ],
      ...extra.spec,
    },
  };
}

/** A GET with the kube config's TLS and auth applied, answered raw (status, headers, body). */
export async function rawGet(config: KubeConfig, path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const options: { headers?: Record<string, string> } = {};
  await config.applyToHTTPSOptions(options as never);
  return new Promise((resolve, reject) => {
    const call = request(`${config.getCurrentCluster()!.server}${path}`, { ...options, method: 'GET' }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    call.on('error', reject);
    call.end();
  });
}
