/**
 * What the child of spawn.ts runs. Apart from spawn.ts because the child's entry (serve-emulator.ts)
 * imports this module while its own top-level await is pending: a module importing
 * spawn-emulator.ts (which imports serve-emulator.ts) would wait on it forever.
 */
import { startFlyEmulator, type FlyEmulatorOptions } from './fly-emulator.js';

/** The options of a spawned emulator: plain data only (they cross to the child as JSON). */
export type SpawnedFlyEmulatorOptions = Pick<
  FlyEmulatorOptions,
  'token' | 'region' | 'owner' | 'images' | 'imageMounts' | 'testInternet' | 'defaultCommand'
>;

/** Starts the emulator and folds its token and edge domain into the one URL the spawn protocol carries. */
export async function startFlyEmulatorForSpawn(options?: SpawnedFlyEmulatorOptions): Promise<{ url: string; close(): Promise<void> }> {
  const emulator = await startFlyEmulator(options);
  const url = new URL(emulator.url);
  url.searchParams.set('token', emulator.token);
  url.searchParams.set('edgeDomain', emulator.edgeDomain);
  return { url: url.href, close: () => emulator.close() };
}
