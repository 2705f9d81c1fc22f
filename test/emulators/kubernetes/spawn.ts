/**
 * The Kubernetes emulator in a child process (see ../shared/spawn-emulator.ts), so that a test's
 * memory checks and a benchmark see the client side only, as against a real cluster. The child
 * reports its URL with the kube config path, namespace and token in the query
 * (kubernetes-spawned.ts); the parent takes them apart.
 */
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { SpawnedKubernetesEmulatorOptions } from './kubernetes-spawned.js';

/** A Kubernetes emulator running in its own process. */
export interface KubernetesEmulatorProcess {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The kube config file the child wrote (removed when it stops). */
  readonly kubeconfigPath: string;
  readonly namespace: string;
  readonly token: string;
  readonly pid: number;
  /** Stops the child, which ends its pods first. Idempotent. */
  close(): Promise<void>;
}

export async function spawnKubernetesEmulator(options?: SpawnedKubernetesEmulatorOptions): Promise<KubernetesEmulatorProcess> {
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'kubernetes-spawned.ts'),
    exportName: 'startKubernetesEmulatorForSpawn',
    label: 'the Kubernetes emulator',
    options,
  });
  const folded = new URL(child.url);
  const kubeconfigPath = folded.searchParams.get('kubeconfig');
  const namespace = folded.searchParams.get('namespace');
  const token = folded.searchParams.get('token');
  if (!kubeconfigPath || !namespace || !token) {
    await child.close();
    throw new Error(`the Kubernetes emulator reported ${child.url}, without its kube config, namespace and token`);
  }
  return { url: folded.origin, kubeconfigPath, namespace, token, pid: child.pid, close: () => child.close() };
}
