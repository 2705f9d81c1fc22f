/**
 * What the emulator's SDK-driven tests (test/emulators/vercel-sdk-*.test.ts) share: an in-process
 * emulator with the credentials and fetch the SDK takes, sandboxes stopped after the file, the
 * skip reason when the default image is not built, and a way to catch the SDK's `APIError`.
 */
import { APIError, Sandbox } from '@vercel/sandbox';
import { defaultRootfsBuilt } from './vercel-images.js';
import { startVercelEmulator, type VercelEmulator, type VercelEmulatorOptions } from './vercel-emulator.js';

/** Why the tests skip: the emulator needs root (rootfs images) and its image. */
export const needsImage =
  defaultRootfsBuilt() && process.getuid?.() === 0 ? '' : ' (skipped: needs root and the rootfs of scripts/build-vercel-images.sh)';

/** The credentials and fetch every SDK call takes. */
export interface SdkAccess {
  token: string;
  teamId: string;
  projectId: string;
  fetch: typeof fetch;
}

export interface TestEmulator {
  readonly emulator: VercelEmulator;
  readonly access: SdkAccess;
  /** `Sandbox.create` with the access, remembered for `close`. */
  create(params?: Omit<NonNullable<Parameters<typeof Sandbox.create>[0]>, keyof SdkAccess>): Promise<Sandbox>;
  /** Deletes what `create` made and stops the emulator. */
  close(): Promise<void>;
}

export async function startTestEmulator(options: VercelEmulatorOptions = {}): Promise<TestEmulator> {
  process.env.VERCEL_TELEMETRY_DISABLED = '1';
  const emulator = await startVercelEmulator(options);
  const access: SdkAccess = { token: emulator.token, teamId: emulator.teamId, projectId: emulator.projectId, fetch: emulator.fetch };
  const made: Sandbox[] = [];
  return {
    emulator,
    access,
    async create(params = {}) {
      const sandbox = await Sandbox.create({ ...access, ...params } as Parameters<typeof Sandbox.create>[0]);
      made.push(sandbox);
      return sandbox;
    },
    async close() {
      for (const sandbox of made) await sandbox.delete().catch(() => undefined);
      await emulator.close();
    },
  };
}

/** The SDK's `APIError` a call rejects with (fails when it resolves or rejects otherwise). */
export async function apiError(call: Promise<unknown>): Promise<APIError<unknown>> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof APIError)) throw new Error(`expected an APIError, got ${outcome === undefined ? 'success' : String(outcome)}`);
  return outcome as APIError<unknown>;
}

/** What `error.code` of Vercel's error body says. */
export function errorCode(error: APIError<unknown>): string | undefined {
  return (error.json as { error?: { code?: string } } | undefined)?.error?.code;
}
