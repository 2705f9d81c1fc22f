/**
 * The E2B emulator in a child process (see ../shared/spawn-emulator.ts), for benchmarks that time
 * the client side alone. The emulator listens on two servers (control plane and envd) while the
 * spawn protocol carries one URL, so the child reports the control plane's URL with the envd URL
 * and the domain in its query (e2b-spawned.ts); the parent takes them apart again.
 */
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { E2bEmulatorOptions } from './e2b-emulator.js';

/** An E2B emulator running in its own process: the three values the SDK needs, and close. */
export interface E2bEmulatorProcess {
  /** Value for `E2B_API_URL`. */
  readonly url: string;
  /** Value for `E2B_SANDBOX_URL`. */
  readonly sandboxUrl: string;
  /** Value for `E2B_DOMAIN`. */
  readonly domain: string;
  readonly pid: number;
  /** Stops the child, which terminates its sandboxes first. Idempotent. */
  close(): Promise<void>;
}

/** @param options the emulator's options that are plain data (they cross to the child as JSON). */
export async function spawnE2bEmulator(options?: Pick<E2bEmulatorOptions, 'apiKey' | 'testInternet'>): Promise<E2bEmulatorProcess> {
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'e2b-spawned.ts'),
    exportName: 'startE2bEmulatorForSpawn',
    label: 'the E2B emulator',
    options,
  });
  const folded = new URL(child.url);
  const sandboxUrl = folded.searchParams.get('sandboxUrl');
  const domain = folded.searchParams.get('domain');
  if (!sandboxUrl || !domain) {
    await child.close();
    throw new Error(`the E2B emulator reported ${child.url}, without its envd URL and domain`);
  }
  return { url: folded.origin, sandboxUrl, domain, pid: child.pid, close: () => child.close() };
}
