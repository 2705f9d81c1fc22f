/**
 * Directory mounts and snapshots on the task command router: TaskMountDirectory
 * (`sb.mountImage(path, image?)`), TaskUnmountDirectory (`sb.unmountImage(path)`) and
 * TaskSnapshotDirectory (`sb.snapshotDirectory(path, { ttlMs })`), for the main container or a
 * sidecar (`containerId`).
 *
 * How the emulator differs from Modal (also in the README's emulator section):
 * - a mount is a COPY made through execs, not a mount: whatever was at the path is moved aside
 *   (to /.modal-emulator-mounts/) and brought back by the unmount, and the image's files are
 *   extracted into a fresh directory there; writes to it are ordinary writes, and `mount`
 *   inside the sandbox shows nothing. A path that had nothing is left an empty directory after
 *   the unmount. A second mount on a mounted path is FAILED_PRECONDITION (no stacking);
 * - a directory snapshot is a tar of the directory kept by the emulator. It mounts anywhere, but
 *   a sandbox or sidecar cannot boot from it (FAILED_PRECONDITION naming the image); the TTL is
 *   a hard cutoff after which the image is NotFound; without `ttlMs` the SDK sends 30 days;
 * - mounting a whole image (a registry tag, a snapshotFilesystem image) copies that image's
 *   root from a helper sandbox; an image whose filesystem is the host's own view (which every
 *   registry tag the emulator maps to the host is) is refused with FAILED_PRECONDITION, because
 *   copying the host's /usr is no emulation of a mount;
 * - customer-supplied encryption keys are refused with UNIMPLEMENTED.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { randomToken } from '../shared/ids.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import { containerSandbox } from './modal-sidecars.js';
import type { ModalState } from './modal-state.js';

type MountRpc = 'taskMountDirectory' | 'taskUnmountDirectory' | 'taskSnapshotDirectory';

const stashRoot = '/.modal-emulator-mounts';
/** The longest timer Node keeps; a longer TTL outlives any emulator run. */
const maxTimerMs = 2 ** 31 - 1;
const legacyTtlSeconds = 30 * 24 * 3600;

/** What a mount replaced, by path, per container sandbox. */
const mountsOf = new WeakMap<LocalSandbox, Map<string, { stash?: string }>>();
/** Directory snapshot image ids by the request's idempotency key, per emulator. */
const snapshotsOf = new WeakMap<ModalState, Map<string, string>>();

export function mountHandlers(state: ModalState): Pick<RpcHandlers, MountRpc> {
  return {
    async taskMountDirectory(request) {
      refuseEncryption('TaskMountDirectory', request);
      const local = containerSandbox(state.runningTask(request.taskId), request.containerId);
      const path = checkPath('TaskMountDirectory', request.path);
      const imageId: string = request.imageId ?? '';
      if (imageId && !state.images.has(imageId))
        throw new RpcError(grpc.status.NOT_FOUND, `TaskMountDirectory: image ${imageId} not found`);
      const mounts = mountsOf.get(local) ?? new Map<string, { stash?: string }>();
      mountsOf.set(local, mounts);
      if (mounts.has(path)) {
        throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskMountDirectory: ${path} already has an image mounted (unmount it first)`);
      }
      const stash = `${stashRoot}/${randomToken(16)}`;
      const prepared = await shell(
        local,
        'if [ -e "$1" ] || [ -L "$1" ]; then mkdir -p "$(dirname "$2")" && mv "$1" "$2" && echo stashed || exit 1; fi; mkdir -p "$1"',
        [path, stash],
      );
      if (prepared.exitCode !== 0)
        throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskMountDirectory: cannot mount at ${path}: ${prepared.stderr.trim()}`);
      const mount = { stash: prepared.stdout.includes('stashed') ? stash : undefined };
      mounts.set(path, mount);
      try {
        if (imageId) await fillFromImage(state, local, path, imageId);
      } catch (error) {
        await unmount(local, path, mount).catch(() => undefined);
        mounts.delete(path);
        throw asRpcError(error);
      }
      return {};
    },

    async taskUnmountDirectory(request) {
      const local = containerSandbox(state.runningTask(request.taskId), request.containerId);
      const path = checkPath('TaskUnmountDirectory', request.path);
      const mount = mountsOf.get(local)?.get(path);
      if (!mount) throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskUnmountDirectory: nothing is mounted at ${path}`);
      await unmount(local, path, mount);
      mountsOf.get(local)?.delete(path);
      return {};
    },

    async taskSnapshotDirectory(request) {
      refuseEncryption('TaskSnapshotDirectory', request);
      const local = containerSandbox(state.runningTask(request.taskId), request.containerId);
      const path = checkPath('TaskSnapshotDirectory', request.path);
      const ttlSeconds = request.ttlSeconds === null || request.ttlSeconds === undefined ? legacyTtlSeconds : Number(request.ttlSeconds);
      if (ttlSeconds !== -1 && !(ttlSeconds > 0)) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `TaskSnapshotDirectory: ttl_seconds must be positive or -1, got ${ttlSeconds}`);
      }
      const snapshots = snapshotsOf.get(state) ?? new Map<string, string>();
      snapshotsOf.set(state, snapshots);
      const known = request.snapshotId ? snapshots.get(request.snapshotId) : undefined;
      if (known && state.images.has(known)) return { imageId: known }; // a retried call
      const imageId = await snapshotDirectory(state, local, path);
      if (request.snapshotId) snapshots.set(request.snapshotId, imageId);
      if (ttlSeconds !== -1 && ttlSeconds * 1000 <= maxTimerMs) {
        setTimeout(() => void expireImage(state, imageId), ttlSeconds * 1000).unref();
      }
      return { imageId };
    },
  };
}

function refuseEncryption(call: string, request: Json): void {
  if (request.customerSuppliedEncryptionKey?.length) {
    throw new RpcError(grpc.status.UNIMPLEMENTED, `${call}: the emulator does not support customer-supplied encryption keys`);
  }
}

function checkPath(call: string, bytes: Uint8Array | undefined): string {
  const path = Buffer.from(bytes ?? []).toString('utf8');
  if (!path.startsWith('/') || path.includes('\0'))
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `${call}: the path must be absolute, got "${path}"`);
  const normal = path.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
  if (normal === '/') throw new RpcError(grpc.status.INVALID_ARGUMENT, `${call}: cannot mount or snapshot the root directory`);
  return normal;
}

async function unmount(local: LocalSandbox, path: string, mount: { stash?: string }): Promise<void> {
  const result = await shell(local, 'rm -rf -- "$1" && if [ -n "$2" ]; then mv "$2" "$1"; else mkdir -p "$1"; fi', [
    path,
    mount.stash ?? '',
  ]);
  if (result.exitCode !== 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskUnmountDirectory: ${result.stderr.trim()}`);
}

/** Extracts the image's files into `path`: a directory snapshot's tar, or a whole image's root. */
async function fillFromImage(state: ModalState, local: LocalSandbox, path: string, imageId: string): Promise<void> {
  const image = state.images.get(imageId)!;
  if (image.directory) {
    await extractInto(local, path, Readable.toWeb(createReadStream(image.directory)) as ReadableStream<Uint8Array>);
    return;
  }
  const helper = await state.provider.create({ ...state.imageOption(imageId), network: 'block', timeoutMs: 30 * 60 * 1000 });
  state.building.add(helper);
  try {
    // The host view binds the host's /usr into the sandbox; a prepared rootfs has it in its root.
    const hostView = await helper.run(['sh', '-c', `awk '$5 == "/usr" { found = 1 } END { exit !found }' /proc/self/mountinfo`]);
    if (hostView.exitCode === 0) {
      throw new RpcError(
        grpc.status.FAILED_PRECONDITION,
        `TaskMountDirectory: image ${imageId}'s filesystem is the emulator host's own view, which the emulator does not copy into a mount (mount a snapshotDirectory image, or an image on a prepared rootfs)`,
      );
    }
    // The root's entries but the kernel's filesystems, named so (busybox tar, which alpine tags
    // run on, has no --exclude).
    const archive = await helper.exec([
      'sh',
      '-c',
      `cd / && exec tar -c $(ls -A | grep -vxE 'proc|sys|dev|${stashRoot.slice(1).replace('.', '\\.')}')`,
    ]);
    await extractInto(local, path, archive.stdout);
    const archived = await archive.wait();
    if (archived.exitCode !== 0)
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskMountDirectory: archiving image ${imageId} failed`);
  } finally {
    state.building.delete(helper);
    await helper.terminate().catch(() => undefined);
  }
}

async function extractInto(local: LocalSandbox, path: string, source: ReadableStream<Uint8Array>): Promise<void> {
  // -o: extract as the sandbox's own user (GNU and busybox tar both read it so).
  const extract = await local.exec(['tar', '-x', '-o', '-C', path, '-f', '-']);
  const stderr = new Response(extract.stderr).text();
  await Promise.all([source.pipeTo(extract.stdin), extract.stdout.cancel()]);
  const { exitCode } = await extract.wait();
  if (exitCode !== 0)
    throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskMountDirectory: extracting into ${path} failed: ${(await stderr).trim()}`);
}

async function snapshotDirectory(state: ModalState, local: LocalSandbox, path: string): Promise<string> {
  const checked = await shell(local, 'if [ ! -e "$1" ]; then exit 3; elif [ ! -d "$1" ]; then exit 4; fi', [path]);
  if (checked.exitCode === 3) throw new RpcError(grpc.status.NOT_FOUND, `TaskSnapshotDirectory: ${path} does not exist`);
  if (checked.exitCode !== 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskSnapshotDirectory: ${path} is not a directory`);
  const imageId = `im-${randomToken(22)}`;
  const dir = join(state.stateDir, 'directory-images');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${imageId}.tar`);
  const archive = await local.exec(['tar', '-c', '-C', path, '.']);
  const stderr = new Response(archive.stderr).text();
  try {
    await archive.stdout.pipeTo(Writable.toWeb(createWriteStream(file)));
    const { exitCode } = await archive.wait();
    if (exitCode !== 0)
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `TaskSnapshotDirectory: tar of ${path} failed: ${(await stderr).trim()}`);
  } catch (error) {
    await rm(file, { force: true });
    throw asRpcError(error);
  }
  state.images.set(imageId, { directory: file });
  return imageId;
}

/** After its TTL a directory snapshot is gone: every lookup of it is NOT_FOUND. */
async function expireImage(state: ModalState, imageId: string): Promise<void> {
  const image = state.images.get(imageId);
  state.images.delete(imageId);
  if (image?.directory) await rm(image.directory, { force: true }).catch(() => undefined);
}

function shell(local: LocalSandbox, script: string, args: string[]) {
  return local.run(['sh', '-c', script, 'sh', ...args]);
}
