/**
 * A local Kubernetes API server emulator: the API server's REST and WebSocket wire protocol on
 * 127.0.0.1 (HTTPS with a self-signed certificate, bearer token), with every pod run in a sandbox of the local bubblewrap
 * provider. The real `@kubernetes/client-node` and the real `kubectl` drive it unchanged through
 * the kube config file it writes (`kubeconfigPath`). See README.md for what is served; every call
 * it does not serve fails loudly (a 404 `Status` naming the call).
 *
 * Wiring only: REST is k8s-api.ts, the pod lifecycle k8s-kubelet.ts, exec and port-forward
 * k8s-exec.ts, watches k8s-watch.ts.
 */
import { createServer } from 'node:https';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { randomToken } from '../shared/ids.js';
import { localProviderOnTestInternet, testInternetDomains } from '../shared/test-internet-provider.js';
import { KubeApi } from './k8s-api.js';
import { KubeStreams } from './k8s-exec.js';
import { Kubelet } from './k8s-kubelet.js';
import { namespaces, runtimeClasses } from './k8s-resources.js';
import { KubeStore } from './k8s-store.js';
import { makeServingCertificate } from './k8s-tls.js';

export interface KubernetesEmulatorOptions {
  /** Where pods run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** The bearer token every call must carry (it is in the kube config). @default a random one */
  token?: string;
  /** The kube config's namespace; it exists from the start, with `default`. @default 'default' */
  namespace?: string;
  /**
   * Kubernetes image references → local images (`'host'` or an absolute rootfs directory, as the
   * local provider takes them). An image not listed runs on `defaultImage`.
   * @default {}
   */
  images?: Record<string, string>;
  /** The local image of every image reference not in `images`. @default 'host' */
  defaultImage?: string;
  /** What the one node can hold; a pod requesting more is Unschedulable. @default this host's cores and memory */
  nodeCapacity?: { cpu: number; memoryMiB: number };
  /** Milliseconds between a pod's create and its start (policies created meanwhile apply from the start). @default 200 */
  startDelayMs?: number;
  /** False: NetworkPolicies are stored and not enforced, as on a cluster whose network plugin ignores them. @default true */
  enforceNetworkPolicy?: boolean;
  /** RuntimeClass objects that exist from the start (`gvisor`, say); a pod naming another is refused. @default [] */
  runtimeClasses?: string[];
  /**
   * Pods reach the test internet (test/egress-internet.ts, plus `hosts`) instead of the local
   * provider's real outbound network: a pod no egress policy restricts gets an allowlist of its
   * names and every address (`0.0.0.0/0`, `::/0`) through the local provider's egress proxy
   * (`HTTP_PROXY` in every command's environment); `ipBlock` CIDRs of a policy narrow it. Not
   * with `provider`. @default false
   */
  testInternet?: boolean | TestInternetOptions;
  /** Changes kept for watches to resume from; a watch from an older resourceVersion gets 410 Expired. @default 5000 */
  watchHistory?: number;
  /** Interval of BOOKMARK events on watches that allow them, in ms. @default 5000 */
  bookmarkIntervalMs?: number;
}

export interface KubernetesEmulator {
  /** `https://127.0.0.1:<port>`: the kube config's `server` (a self-signed certificate, in the kube config as its CA). */
  readonly url: string;
  /** A kube config file for it (one cluster with its CA, a token user, the namespace); for `KUBECONFIG`, `kubectl --kubeconfig` and `KubeConfig.loadFromFile`. */
  readonly kubeconfigPath: string;
  /** The kube config's namespace. */
  readonly namespace: string;
  readonly token: string;
  /** The serving certificate (PEM), the kube config's `certificate-authority-data`. */
  readonly caCertificate: string;
  /** Call counts by `METHOD resource[/subresource]` (and `GET <discovery path>`), for tests and the benchmark. */
  readonly calls: ReadonlyMap<string, number>;
  /** Ends every pod's sandbox, stops the server and removes the kube config. Idempotent. */
  close(): Promise<void>;
}

/** The kube config text for a server, its CA certificate (PEM), a token and a namespace. */
export function kubeconfigFor(server: string, caCertificate: string, token: string, namespace: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: sandport-emulator',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${Buffer.from(caCertificate).toString('base64')}`,
    'users:',
    '- name: sandport-emulator',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: sandport-emulator',
    '  context:',
    '    cluster: sandport-emulator',
    '    user: sandport-emulator',
    `    namespace: ${namespace}`,
    'current-context: sandport-emulator',
    'preferences: {}',
    '',
  ].join('\n');
}

export async function startKubernetesEmulator(options: KubernetesEmulatorOptions = {}): Promise<KubernetesEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const openNetwork = internet
    ? { allowDomains: await testInternetDomains(options.testInternet), allowCidrs: ['0.0.0.0/0', '::/0'] }
    : undefined;
  const token = options.token ?? `k8s-emulator-${randomToken(24)}`;
  const namespace = options.namespace ?? 'default';
  const store = new KubeStore(options.watchHistory);
  for (const name of new Set(['default', 'kube-system', namespace]))
    store.create(namespaces, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } as never, status: { phase: 'Active' } });
  for (const name of options.runtimeClasses ?? [])
    store.create(runtimeClasses, undefined, {
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name } as never,
      handler: name,
    });
  const dir = await mkdtemp(join(tmpdir(), 'k8s-emulator-'));
  const claimRoot = join(dir, 'claims');
  await mkdir(claimRoot);
  // The sandbox's unprivileged host uid has to get through to the claim directories below.
  await chmod(dir, 0o711);
  await chmod(claimRoot, 0o711);
  const kubelet = new Kubelet({
    store,
    claimRoot,
    provider,
    images: options.images ?? {},
    defaultImage: options.defaultImage ?? 'host',
    nodeCapacity: options.nodeCapacity ?? { cpu: availableParallelism(), memoryMiB: Math.floor(totalmem() / 2 ** 20) },
    startDelayMs: options.startDelayMs ?? 200,
    enforceNetworkPolicy: options.enforceNetworkPolicy ?? true,
    ...(openNetwork ? { openNetwork } : {}),
  });
  const calls = new Map<string, number>();
  let url = '';
  const api = new KubeApi({
    store,
    kubelet,
    token,
    calls,
    serverAddress: () => url.replace(/^https:\/\//, ''),
    watch: { bookmarkIntervalMs: options.bookmarkIntervalMs ?? 5000 },
  });
  const streams = new KubeStreams({ store, kubelet, token, calls });
  const certificate = await makeServingCertificate(dir);
  const server = createServer({ key: certificate.key, cert: certificate.cert }, api.handle);
  server.on('upgrade', streams.handleUpgrade);
  // Watches and execs hold a request open for as long as they last.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfigPath = join(dir, 'kubeconfig');
  await writeFile(kubeconfigPath, kubeconfigFor(url, certificate.cert.toString('utf8'), token, namespace), { mode: 0o600 });
  let closed: Promise<void> | undefined;
  return {
    url,
    kubeconfigPath,
    namespace,
    token,
    caCertificate: certificate.cert.toString('utf8'),
    calls,
    close: () =>
      (closed ??= (async () => {
        streams.close();
        await kubelet.close();
        await internet?.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}
