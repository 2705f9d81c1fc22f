/**
 * What a sandbox starts from: Vercel's managed images (`vercel/sandbox/universal` and the other
 * `vercel/sandbox/*` names, the default) and legacy runtimes (`node22`, `node24`, `python3.13`)
 * all run on one local root filesystem built by scripts/build-vercel-images.sh (Node.js and
 * Python, `/vercel/sandbox`, the `vercel-sandbox` user with sudo). Any other image (a VCR
 * repository of a project) is a 404 as for an image that does not exist.
 */
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { HttpError, badRequest } from './vercel-http.js';

/** Where the script puts its images. */
export function vercelImagesDir(): string {
  return process.env.SANDPORT_VERCEL_IMAGES_DIR ?? '/var/cache/sandport/rootfs/vercel';
}

/** The rootfs every managed image and runtime maps to. */
export function defaultRootfs(): string {
  return join(vercelImagesDir(), 'default');
}

/** Whether the default rootfs was built (tests skip, naming the script, when not). */
export function defaultRootfsBuilt(): boolean {
  return existsSync(join(defaultRootfs(), '.sandport-complete'));
}

/** Vercel's default image. */
export const defaultImage = 'vercel/sandbox/universal';
/** The runtimes the SDK names (`RUNTIMES`). */
export const runtimes = ['node22', 'node24', 'python3.13'] as const;
/** Vercel's default working directory. */
export const defaultCwd = '/vercel/sandbox';
/** Vercel's default user (commands without sudo). */
export const defaultUser = 'vercel-sandbox';

/** What a session's local sandbox is created from, and what the answers report. */
export interface ResolvedImage {
  /** The local provider's `image`. */
  readonly localImage: string;
  /** `sandbox.image` in answers: `<repository>@sha256:<digest>`; undefined for a runtime. */
  readonly image: string | undefined;
  readonly runtime: string | undefined;
}

function missingRootfs(): HttpError {
  return new HttpError(
    500,
    'emulator_image_missing',
    `FAILED: the Vercel emulator runs every image on the local rootfs ${defaultRootfs()}, which is not built: run sudo bash scripts/build-vercel-images.sh`,
  );
}

/** Resolves `image` / `runtime` of a create (at most one of them). Throws 400/404. */
export function resolveImage(image: string | undefined, runtime: string | undefined): ResolvedImage {
  if (image !== undefined && runtime !== undefined) throw badRequest('image', 'image and runtime cannot be used together');
  if (runtime !== undefined && !(runtimes as readonly string[]).includes(runtime)) {
    throw badRequest('runtime', `"${runtime}" is not one of ${runtimes.join(', ')}`);
  }
  const repository = image === undefined ? defaultImage : image.replace(/[:@].*$/, '');
  if (!repository.startsWith('vercel/sandbox/')) {
    throw new HttpError(
      404,
      'image_not_found',
      `image "${image}" not found (the Vercel emulator has the managed vercel/sandbox/* images only)`,
    );
  }
  if (!defaultRootfsBuilt()) throw missingRootfs();
  const digest = createHash('sha256').update(repository).digest('hex');
  return { localImage: defaultRootfs(), image: runtime === undefined ? `${repository}@sha256:${digest}` : undefined, runtime };
}
