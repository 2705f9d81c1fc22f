export { kubeconfigFor, startKubernetesEmulator, type KubernetesEmulator, type KubernetesEmulatorOptions } from './kubernetes-emulator.js';
export { spawnKubernetesEmulator, type KubernetesEmulatorProcess } from './spawn.js';
export type { SpawnedKubernetesEmulatorOptions } from './kubernetes-spawned.js';
