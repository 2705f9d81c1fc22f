/**
 * What the child of spawn.ts runs. Apart from spawn.ts because the child's entry (serve-emulator.ts)
 * imports this module while its own top-level await is pending: a module importing
 * spawn-emulator.ts (which imports serve-emulator.ts) would wait on it forever.
 */
import { startKubernetesEmulator, type KubernetesEmulatorOptions } from './kubernetes-emulator.js';

/** The options of a spawned emulator: plain data only (they cross to the child as JSON). */
export type SpawnedKubernetesEmulatorOptions = Omit<KubernetesEmulatorOptions, 'provider'>;

/** Starts the emulator and folds its kube config path, namespace and token into the one URL the spawn protocol carries. */
export async function startKubernetesEmulatorForSpawn(
  options?: SpawnedKubernetesEmulatorOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const emulator = await startKubernetesEmulator(options);
  const url = new URL(emulator.url);
  url.searchParams.set('kubeconfig', emulator.kubeconfigPath);
  url.searchParams.set('namespace', emulator.namespace);
  url.searchParams.set('token', emulator.token);
  return { url: url.href, close: () => emulator.close() };
}
