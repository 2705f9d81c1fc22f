/**
 * What the child of spawn.ts runs. Apart from spawn.ts because the child's entry (serve-emulator.ts)
 * imports this module while its own top-level await is pending: a module importing
 * spawn-emulator.ts (which imports serve-emulator.ts) would wait on it forever.
 */
import { startVercelEmulator, type VercelEmulatorOptions } from './vercel-emulator.js';

/** Starts the emulator and folds its API base, tunnel base and credentials into one URL. */
export async function startVercelEmulatorForSpawn(
  options?: Pick<VercelEmulatorOptions, 'token' | 'teamId' | 'projectId' | 'testInternet'>,
): Promise<{ url: string; close(): Promise<void> }> {
  const emulator = await startVercelEmulator(options);
  const url = new URL(emulator.baseUrl);
  url.searchParams.set('tunnelBaseUrl', emulator.tunnelBaseUrl);
  url.searchParams.set('token', emulator.token);
  url.searchParams.set('teamId', emulator.teamId);
  url.searchParams.set('projectId', emulator.projectId);
  return { url: url.href, close: () => emulator.close() };
}
