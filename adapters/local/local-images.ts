/**
 * Where a sandbox's filesystem comes from: the host view, a prepared copy of a rootfs directory,
 * or a snapshot (a tar of an earlier sandbox's layer). Snapshots and prepared images live in the
 * provider's state directory.
 */
import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { access, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxInvalidArgumentError, type SandboxSnapshotRef } from '../../src/kit/index.js';
import { mapLocalError } from './local-errors.js';
import { checkSnapshotId, type LocalImagePlan, type LocalSettings } from './local-options.js';
import type { LocalSystem } from './local-system.js';

const provider = 'local';

/** What a snapshot records besides its tar: the base it was taken over. */
interface SnapshotMeta {
  base: string;
  sandboxId: string;
  createdAt: number;
}

export interface LocalImages {
  /** Fills `layer` for the plan's image and returns the overlay's lower directory, or `'host'`. */
  prepare(image: LocalImagePlan, layer: string, system: LocalSystem): Promise<string>;
  /** Archives `layer` (the caller freezes the sandbox around it). */
  snapshot(
    layer: string,
    base: string,
    sandboxId: string,
    system: LocalSystem,
    signal: AbortSignal | undefined,
  ): Promise<SandboxSnapshotRef>;
  /** Deletes a snapshot's files. Idempotent. */
  deleteSnapshot(id: string): Promise<void>;
}

export function createLocalImages(settings: Pick<LocalSettings, 'stateDir' | 'sandboxUid'>): LocalImages {
  const snapshots = join(settings.stateDir, 'snapshots');
  const prepared = new Map<string, Promise<string>>();

  /** A root-owned copy of the rootfs would be read-only to the sandbox; keep one chowned copy per image. */
  const prepareRootfs = (path: string): Promise<string> => {
    const pending = prepared.get(path);
    if (pending) return pending;
    const preparing = copyRootfs(path, settings);
    prepared.set(path, preparing);
    preparing.catch(() => prepared.delete(path));
    return preparing;
  };

  return {
    async prepare(image, layer, system) {
      if (image.kind === 'host') return 'host';
      if (image.kind === 'rootfs') return prepareRootfs(image.path);
      const meta = join(snapshots, `${checkSnapshotId(image.id)}.json`);
      const info = JSON.parse(await readFile(meta, 'utf8').catch(() => 'null')) as SnapshotMeta | null;
      if (!info) throw new SandboxInvalidArgumentError({ message: `Unknown local snapshot ${image.id}`, argument: 'image', provider });
      await run(system.binaries.tar, [
        '-C',
        layer,
        '--xattrs',
        '--xattrs-include=*',
        '--numeric-owner',
        '-xf',
        meta.replace(/\.json$/, '.tar'),
      ]);
      // bwrap recreates the host view's top-level symlinks and refuses to find them already there.
      if (info.base === 'host')
        for (const name of system.hostRootSymlinks.keys()) await rm(join(layer, name), { force: true }).catch(() => undefined);
      return info.base;
    },

    async snapshot(layer, base, sandboxId, system, signal) {
      const id = `snap-${randomBytes(8).toString('hex')}`;
      await mkdir(snapshots, { recursive: true, mode: 0o700 });
      const tar = join(snapshots, `${id}.tar`);
      try {
        await run(system.binaries.tar, ['-C', layer, '--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', tar, '.'], signal);
      } catch (error) {
        await rm(tar, { force: true });
        if (signal?.aborted) throw signal.reason;
        throw mapLocalError(error, 'Snapshot failed');
      }
      const meta: SnapshotMeta = { base, sandboxId, createdAt: Date.now() };
      await writeFile(join(snapshots, `${id}.json`), JSON.stringify(meta));
      return { type: 'snapshot', provider, id };
    },

    async deleteSnapshot(id) {
      const base = join(snapshots, checkSnapshotId(id));
      await rm(`${base}.tar`, { force: true });
      await rm(`${base}.json`, { force: true });
    },
  };
}

async function copyRootfs(path: string, settings: Pick<LocalSettings, 'stateDir' | 'sandboxUid'>): Promise<string> {
  const source = await realpath(path).catch(() => undefined);
  const info = source ? await stat(source) : undefined;
  if (!source || !info?.isDirectory()) {
    throw new SandboxInvalidArgumentError({ message: `image ${path} is not a directory`, argument: 'image', provider });
  }
  await access(join(source, 'bin', 'sh')).catch(() => {
    throw new SandboxInvalidArgumentError({ message: `image ${path} has no /bin/sh: not a root filesystem`, argument: 'image', provider });
  });
  const key = createHash('sha256').update(`${source}\0${info.mtimeMs}\0${settings.sandboxUid}`).digest('hex').slice(0, 16);
  const target = join(settings.stateDir, 'images', key);
  if (
    await stat(target).then(
      () => true,
      () => false,
    )
  )
    return target;
  await mkdir(join(settings.stateDir, 'images'), { recursive: true, mode: 0o711 });
  const staging = `${target}.${process.pid}.tmp`;
  await run('cp', ['-a', '--reflink=auto', `${source}/.`, `${staging}/`]).catch(async () => {
    await mkdir(staging, { recursive: true });
    await run('cp', ['-a', `${source}/.`, `${staging}/`]);
  });
  await run('chown', ['-hR', `${settings.sandboxUid}:${settings.sandboxUid}`, staging]);
  await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
    await rm(staging, { recursive: true, force: true });
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
  });
  return target;
}

/** Runs a host tool to completion; rejects with its stderr tail on a non-zero exit. */
export function run(command: string, args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${stderr.trim()}`))));
  });
}
