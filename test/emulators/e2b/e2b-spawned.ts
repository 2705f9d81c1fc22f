/**
 * What the child of spawn.ts runs. Apart from spawn.ts because the child's entry (serve-emulator.ts)
 * imports this module while its own top-level await is pending: a module importing
 * spawn-emulator.ts (which imports serve-emulator.ts) would wait on it forever.
 */
import { startE2bEmulator, type E2bEmulatorOptions } from './e2b-emulator.js';

/** Starts the emulator and folds its three addresses into one URL. */
export async function startE2bEmulatorForSpawn(
  options?: Pick<E2bEmulatorOptions, 'apiKey' | 'testInternet'>,
): Promise<{ url: string; close(): Promise<void> }> {
  const emulator = await startE2bEmulator(options);
  const url = new URL(emulator.url);
  url.searchParams.set('sandboxUrl', emulator.sandboxUrl);
  url.searchParams.set('domain', emulator.domain);
  return { url: url.href, close: () => emulator.close() };
}
