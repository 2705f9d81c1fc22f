/**
 * The Vercel emulator in a child process (see ../shared/spawn-emulator.ts), so that a test's
 * memory checks and a benchmark see the client side only. The child reports one URL carrying the
 * API base with the tunnel base and the credentials in its query (vercel-spawned.ts); the parent
 * takes them apart and builds the rewriting fetch on its side (a function cannot cross).
 */
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { VercelEmulatorOptions } from './vercel-emulator.js';
import { createVercelFetch } from './vercel-fetch.js';

/** A Vercel emulator running in its own process: what the SDK needs, and close. */
export interface VercelEmulatorProcess {
  /** The emulator's API base (`http://127.0.0.1:PORT/api`). */
  readonly baseUrl: string;
  /** The fetch to hand to the SDK (maps `https://vercel.com/api` and `*.vercel.run`). */
  readonly fetch: typeof fetch;
  /** `http://vercel.localhost:<edgePort>`: the tunnel base. */
  readonly tunnelBaseUrl: string;
  readonly token: string;
  readonly teamId: string;
  readonly projectId: string;
  readonly pid: number;
  /** Stops the child, which stops its sessions first. Idempotent. */
  close(): Promise<void>;
}

/** @param options the emulator's options that are plain data (they cross to the child as JSON). */
export async function spawnVercelEmulator(
  options?: Pick<VercelEmulatorOptions, 'token' | 'teamId' | 'projectId' | 'testInternet'>,
): Promise<VercelEmulatorProcess> {
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'vercel-spawned.ts'),
    exportName: 'startVercelEmulatorForSpawn',
    label: 'the Vercel emulator',
    options,
  });
  const folded = new URL(child.url);
  const read = (name: string) => folded.searchParams.get(name);
  const [tunnelBaseUrl, token, teamId, projectId] = ['tunnelBaseUrl', 'token', 'teamId', 'projectId'].map(read);
  if (!tunnelBaseUrl || !token || !teamId || !projectId) {
    await child.close();
    throw new Error(`the Vercel emulator reported ${child.url}, without its tunnel base and credentials`);
  }
  const baseUrl = `${folded.origin}${folded.pathname}`;
  return {
    baseUrl,
    fetch: createVercelFetch({ baseUrl, tunnelBaseUrl }),
    tunnelBaseUrl,
    token,
    teamId,
    projectId,
    pid: child.pid,
    close: () => child.close(),
  };
}
