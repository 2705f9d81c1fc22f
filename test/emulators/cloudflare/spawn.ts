/**
 * The bridge emulator in a child process (see ../shared/spawn-emulator.ts), so that a test's
 * memory checks and a benchmark see the client side only. The token is made here and handed to
 * the child, and `restartContainer` goes through the emulator's test route
 * (`POST /__emulator/sandbox/:id/restart`, see cloudflare-emulator.ts).
 *
 * Tunnel URLs end in `.trycloudflare.localhost:<port>`: a process reaching them calls
 * `installLocalhostResolution()` (exported by index.ts) first.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnEmulator } from '../shared/spawn-emulator.js';
import type { CloudflareBridgeEmulatorOptions } from './cloudflare-emulator.js';
import type { BridgeVersion } from './cloudflare-wire.js';

/** A bridge emulator running in its own process. */
export interface CloudflareBridgeEmulatorProcess {
  /** The bridge's base URL. */
  readonly url: string;
  /** The bearer token; undefined when auth is off. */
  readonly token: string | undefined;
  readonly version: BridgeVersion;
  readonly pid: number;
  /** Stops the container of `sandboxId` and wipes its state; resolves to whether one ran. */
  restartContainer(sandboxId: string): Promise<boolean>;
  /** Stops the child, which terminates its containers first. Idempotent. */
  close(): Promise<void>;
}

/** @param options the emulator's options that are plain data (they cross to the child as JSON). */
export async function spawnCloudflareBridgeEmulator(
  options: Omit<CloudflareBridgeEmulatorOptions, 'provider'> = {},
): Promise<CloudflareBridgeEmulatorProcess> {
  const token = options.token === false ? undefined : (options.token ?? randomBytes(18).toString('base64url'));
  const version = options.version ?? '0.12';
  const child = await spawnEmulator({
    module: join(import.meta.dirname, 'cloudflare-emulator.ts'),
    exportName: 'startCloudflareBridgeEmulator',
    label: 'the Cloudflare bridge emulator',
    options: { ...options, version, token: token ?? false },
  });
  return {
    url: child.url,
    token,
    version,
    pid: child.pid,
    async restartContainer(sandboxId) {
      const response = await fetch(`${child.url}/__emulator/sandbox/${encodeURIComponent(sandboxId)}/restart`, {
        method: 'POST',
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
      if (!response.ok) throw new Error(`the emulator's restart hook answered ${response.status}: ${await response.text()}`);
      return ((await response.json()) as { restarted: boolean }).restarted;
    },
    close: () => child.close(),
  };
}
