/**
 * The Fly emulator in a child process (see ../shared/spawn-emulator.ts), so that a test's memory
 * checks and a benchmark see the client side only, as against the real Fly. The child reports its
 * URL with the token and the edge domain in the query (fly-spawned.ts); the parent takes them apart.
 */
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { SpawnedFlyEmulatorOptions } from './fly-spawned.js';

/** A Fly emulator running in its own process. */
export interface FlyEmulatorProcess {
  /** Value for `FLY_API_HOSTNAME`. */
  readonly url: string;
  /** Value for `FLY_API_TOKEN`. */
  readonly token: string;
  /** `fly.localhost`: `http://<app>.<edgeDomain>:<port>` reaches the service on external `<port>`. */
  readonly edgeDomain: string;
  readonly pid: number;
  /** Stops the child, which ends its machines first. Idempotent. */
  close(): Promise<void>;
}

export async function spawnFlyEmulator(options?: SpawnedFlyEmulatorOptions): Promise<FlyEmulatorProcess> {
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'fly-spawned.ts'),
    exportName: 'startFlyEmulatorForSpawn',
    label: 'the Fly emulator',
    options,
  });
  const folded = new URL(child.url);
  const token = folded.searchParams.get('token');
  const edgeDomain = folded.searchParams.get('edgeDomain');
  if (!token || !edgeDomain) {
    await child.close();
    throw new Error(`the Fly emulator reported ${child.url}, without its token and edge domain`);
  }
  return { url: folded.origin, token, edgeDomain, pid: child.pid, close: () => child.close() };
}
