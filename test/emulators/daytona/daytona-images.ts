/**
 * What a Daytona sandbox's filesystem starts from, on the local provider. The emulator pulls
 * nothing:
 * - the default snapshot (`daytona-small`, what `daytona.create()` without a snapshot or image
 *   uses) and every registry image named in `image` or a Dockerfile's `FROM` run on one local
 *   rootfs built by scripts/build-daytona-images.sh: Debian bookworm with python3 (`python`,
 *   pip), git, curl, sudo, socat, and the non-root user `daytona` (uid 1000, passwordless sudo)
 *   whose home is the default working directory. The image's name is kept in the sandbox's
 *   `buildInfo` and the snapshot's `imageName`, but a tag's own userland (its Python version, an
 *   Alpine busybox) is not reproduced;
 * - a Dockerfile (`Image.base(...).runCommands(...)`, `Image.debianSlim().pipInstall(...)`) is
 *   built in a sandbox of that rootfs: `RUN` lines run in order through `sh -c` and the result
 *   is a local snapshot (the toolchain preamble of `Image.debianSlim()` is taken as done, see
 *   `debianSlimPreamble`; `pip install` needs the package index, which a test machine without
 *   internet does not reach, so it fails the build); `ENV` and `WORKDIR` are kept for the sandboxes made from it; `COPY` and
 *   `ADD` (which need Daytona's object storage for their context) fail the build naming them;
 * - a snapshot made by `sandbox.createSnapshot(name)` is the local provider's snapshot of it.
 * Without the rootfs built, creating fails naming the script, as a precondition (400).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSnapshotRef } from '../../../src/kit/index.js';
import { HttpError } from './daytona-http.js';

/** Where scripts/build-daytona-images.sh puts its image (`SANDPORT_DAYTONA_IMAGES_DIR`, read when an emulator starts). */
export function daytonaImagesDir(): string {
  return process.env.SANDPORT_DAYTONA_IMAGES_DIR ?? '/var/cache/sandport/rootfs/daytona';
}

/** The name of the snapshot sandboxes start from when the create names none. */
export const defaultSnapshotName = 'daytona-small';

/** The local rootfs of the default image; throws a 400 naming the script when it was not built. */
export function defaultRootfs(): string {
  const rootfs = join(daytonaImagesDir(), 'default');
  if (!existsSync(join(rootfs, '.sandport-complete'))) {
    throw new HttpError(
      400,
      `FAILED: the Daytona emulator runs sandboxes on the local rootfs ${rootfs}, which is not built: run sudo bash scripts/build-daytona-images.sh`,
    );
  }
  return rootfs;
}

/** What a local sandbox is created from, and what the image set for the processes in it. */
export interface LocalImage {
  image: string | SandboxSnapshotRef;
  /** `ENV` lines of the Dockerfile, in order. */
  env: Record<string, string>;
  /** The last `WORKDIR`, when one was set. */
  workdir: string | undefined;
  /** The registry image named (`FROM`, or `image` as a string). */
  imageName: string | undefined;
}

/** One parsed Dockerfile: its base and the steps to run on it. */
export interface DockerfilePlan {
  from: string;
  steps: Array<{ kind: 'run'; command: string } | { kind: 'env'; name: string; value: string } | { kind: 'workdir'; path: string }>;
}

/**
 * The lines `Image.debianSlim()` writes after its `FROM` (apt-get update, a compiler toolchain, a
 * pip upgrade, debconf). The default rootfs already is a Debian with Python and pip; it has no
 * compilers, and installing them on every build would take minutes, so these lines are taken as
 * done. Any other `RUN apt-get` runs (apt downloads as root in the image).
 */
const debianSlimPreamble = [
  'apt-get update',
  'apt-get install -y gcc gfortran build-essential',
  'pip install --upgrade pip',
  "echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections",
];

/** Joins continuation lines (`\` at the end) and drops comments and blank lines. */
function logicalLines(content: string): string[] {
  const lines: string[] = [];
  let pending = '';
  for (const raw of content.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (pending === '' && /^\s*#/.test(line)) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)}\n`;
      continue;
    }
    const whole = pending + line;
    pending = '';
    if (whole.trim() !== '') lines.push(whole.trim());
  }
  if (pending.trim() !== '') lines.push(pending.trim());
  return lines;
}

/** `["a", "b"]` (exec form) as one shell command; anything else as given. */
function shellForm(text: string): string {
  if (!text.startsWith('[')) return text;
  try {
    const argv = JSON.parse(text) as unknown;
    if (Array.isArray(argv) && argv.every((part) => typeof part === 'string')) {
      return argv.map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(' ');
    }
  } catch {
    // Not JSON: the shell form after all.
  }
  return text;
}

function parseEnv(rest: string): Array<{ name: string; value: string }> {
  // `ENV NAME=value NAME2="v 2"` or the old `ENV NAME value`.
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(rest)) {
    const space = rest.search(/\s/);
    return space === -1 ? [] : [{ name: rest.slice(0, space), value: rest.slice(space + 1).trim() }];
  }
  const pairs: Array<{ name: string; value: string }> = [];
  const pattern = /([A-Za-z_][A-Za-z0-9_]*)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))\s*/g;
  for (const match of rest.matchAll(pattern)) {
    const value = match[3] !== undefined ? match[3].replace(/\\(.)/g, '$1') : (match[4] ?? match[5] ?? '');
    pairs.push({ name: match[1]!, value });
  }
  return pairs;
}

/**
 * Parses what the SDK's `Image` builder writes (and hand-written Dockerfiles of the same kind).
 * Throws a 400 naming the instruction the emulator cannot build.
 */
export function parseDockerfile(content: string): DockerfilePlan {
  let from: string | undefined;
  const steps: DockerfilePlan['steps'] = [];
  for (const line of logicalLines(content)) {
    const space = line.search(/\s/);
    const instruction = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const rest = space === -1 ? '' : line.slice(space + 1).trim();
    switch (instruction) {
      case 'FROM':
        from = rest.split(/\s+/)[0];
        break;
      case 'RUN':
        steps.push({ kind: 'run', command: shellForm(rest) });
        break;
      case 'ENV':
        for (const pair of parseEnv(rest)) steps.push({ kind: 'env', ...pair });
        break;
      case 'WORKDIR':
        steps.push({ kind: 'workdir', path: rest });
        break;
      // Metadata the local sandbox has no use for.
      case 'LABEL':
      case 'EXPOSE':
      case 'ARG':
      case 'USER':
      case 'SHELL':
      case 'CMD':
      case 'ENTRYPOINT':
      case 'STOPSIGNAL':
      case 'HEALTHCHECK':
      case 'VOLUME':
        break;
      default:
        throw new HttpError(
          400,
          `The Daytona emulator cannot build the Dockerfile instruction ${instruction} (COPY and ADD need Daytona's object storage for their context, which it does not emulate)`,
        );
    }
  }
  if (!from) throw new HttpError(400, 'The Dockerfile has no FROM');
  const preamble = steps.slice(0, debianSlimPreamble.length);
  const isDebianSlim =
    /(^|\/)python:[^ ]*-slim-bookworm$/.test(from) &&
    preamble.length === debianSlimPreamble.length &&
    preamble.every((step, index) => step.kind === 'run' && step.command === debianSlimPreamble[index]);
  return { from, steps: isDebianSlim ? steps.slice(debianSlimPreamble.length) : steps };
}

/** The image of a registry name: the default rootfs, the name kept. */
export function registryImage(name: string): LocalImage {
  return { image: defaultRootfs(), env: {}, workdir: undefined, imageName: name };
}
