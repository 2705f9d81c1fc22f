/**
 * The Daytona emulator in a child process (see ../shared/spawn-emulator.ts), so that a test's
 * memory checks and a benchmark see the client side only. The child reports the API URL; the
 * key is the one the parent asked for (or the emulator's fixed test key). Preview links have
 * `*.localhost` host names: a process that fetches them calls `installLocalhostResolution()`.
 */
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { DaytonaEmulatorOptions } from './daytona-emulator.js';

/** A Daytona emulator running in its own process: what the SDK needs, and close. */
export interface DaytonaEmulatorProcess {
  /** The SDK's `apiUrl` (`http://127.0.0.1:<port>/api`). */
  readonly url: string;
  /** The SDK's `apiKey`. */
  readonly apiKey: string;
  readonly pid: number;
  /** Stops the child, which terminates its sandboxes first. Idempotent. */
  close(): Promise<void>;
}

/** @param options the emulator's options that are plain data (they cross to the child as JSON). */
export async function spawnDaytonaEmulator(
  options: Pick<DaytonaEmulatorOptions, 'apiKey' | 'testInternet'> = {},
): Promise<DaytonaEmulatorProcess> {
  const apiKey = options.apiKey ?? 'daytona-emulator-key';
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'daytona-emulator.ts'),
    exportName: 'startDaytonaEmulator',
    label: 'the Daytona emulator',
    options: { ...options, apiKey },
  });
  return { url: child.url, apiKey, pid: child.pid, close: () => child.close() };
}
