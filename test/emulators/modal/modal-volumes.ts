/**
 * Volumes as Modal has them: each sandbox mounts a view of its own, a copy of the volume's
 * committed state taken at create; its writes reach the volume when it commits (VolumeCommit,
 * or when the sandbox ends), and it sees what others committed when it reloads
 * (`sb.reloadVolumes()`, TaskReloadVolumes). Ephemeral volumes live while heartbeats arrive.
 *
 * How close this is to Modal:
 * - A view is a full copy (`cp -a`), not copy-on-write: mounting a large volume costs its size
 *   in time and disk. Modal fetches lazily.
 * - A commit publishes what changed in the view since it was taken or last reloaded, file by
 *   file (new or changed entries are copied over, removed ones removed): the last writer of a
 *   file wins, and files only others changed are kept, as Modal documents.
 * - A reload commits the view's own changes first (Modal: uncommitted changes "may implicitly be
 *   committed" on reload), then replaces the view with the committed state. Modal refuses to
 *   reload while files are open; the emulator does not check.
 * - For Volumes v2, Modal documents `sync <mountpoint>` inside the sandbox as a commit: the
 *   emulator commits when an exec's argv is exactly `sync` and mount points of v2 volumes (a
 *   `sync` inside a shell script is only a sync). Modal's Functions also commit in the
 *   background; its Sandboxes, like the emulator, only at these points.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { CreateSandboxOptions } from '../../../src/kit/index.js';
import { ExecRecord } from '../shared/exec-record.js';
import { randomToken } from '../shared/ids.js';
import { RpcError, type Json, type RpcCall, type RpcHandlers } from './modal-rpc.js';
import type { EmulatedSandbox, ModalState } from './modal-state.js';

/** How long an ephemeral volume outlives its last heartbeat: two of the SDK's beats (300 s apart). */
export const defaultEphemeralTimeoutMs = 600_000;

export interface VolumeOptions {
  /** How long an ephemeral volume lives after its last heartbeat, in ms. @default 600_000 */
  ephemeralTimeoutMs?: number;
}

interface VolumeRecord {
  id: string;
  /** Key in `state.volumes`. */
  key: string;
  /** The committed state. */
  dir: string;
  version: number;
  name: string;
  deleted: boolean;
  expiry?: NodeJS.Timeout;
  /** Commits and reloads of this volume, one at a time. */
  queue: Promise<void>;
}

interface VolumeView {
  volume: VolumeRecord;
  /** The sandbox's copy (bind-mounted at the mount path). */
  dir: string;
  /** Where the sandbox mounts it. */
  mountPath: string;
  /** Where in the volume the view starts ('' for its root). */
  subPath: string;
  readOnly: boolean;
  /** Signature of every entry as of the last commit or reload, by relative path. */
  manifest: Map<string, string>;
}

class VolumeStore {
  readonly records = new Map<string, VolumeRecord>();
  /** Views by sandbox id, while the sandbox runs. */
  readonly views = new Map<string, VolumeView[]>();
  /** Volumes being created, by key. */
  readonly creating = new Map<string, Promise<VolumeRecord>>();
  /** Settles once the sandbox's views were committed and removed. */
  readonly released = new Map<string, Promise<void>>();

  constructor(
    readonly state: ModalState,
    readonly ephemeralTimeoutMs: number,
  ) {}
}

const stores = new WeakMap<ModalState, VolumeStore>();

function storeOf(state: ModalState): VolumeStore {
  let store = stores.get(state);
  if (!store) stores.set(state, (store = new VolumeStore(state, defaultEphemeralTimeoutMs)));
  return store;
}

type VolumeRpc = 'volumeGetOrCreate' | 'volumeHeartbeat' | 'volumeDelete' | 'volumeCommit' | 'volumeReload' | 'taskReloadVolumes';

export function volumeHandlers(state: ModalState, options: VolumeOptions = {}): Pick<RpcHandlers, VolumeRpc> {
  const store = new VolumeStore(state, options.ephemeralTimeoutMs ?? defaultEphemeralTimeoutMs);
  stores.set(state, store);
  // The sandboxes have ended by now: let their last commits finish before the state dir goes.
  state.closers.add(async () => {
    await Promise.allSettled(store.released.values());
    for (const record of store.records.values()) clearTimeout(record.expiry);
  });
  return {
    async volumeGetOrCreate(request) {
      const ephemeral = request.objectCreationType === 5;
      const key = ephemeral ? `ephemeral-${randomToken(8)}` : `${request.environmentName}/${request.deploymentName}`;
      const existing = state.volumes.get(key);
      // Concurrent creates of one name share the first one's volume.
      let pending = store.creating.get(key);
      if (!existing && !pending) {
        pending = createVolume(store, key, request, ephemeral).finally(() => store.creating.delete(key));
        store.creating.set(key, pending);
      }
      const record = existing ? store.records.get(existing.id)! : await pending!;
      if (ephemeral) heartbeat(store, record);
      return { volumeId: record.id, version: record.version, metadata: { version: record.version, name: record.name } };
    },
    async volumeHeartbeat(request) {
      heartbeat(store, liveRecord(store, request.volumeId));
      return {};
    },
    async volumeDelete(request) {
      await deleteVolume(store, liveRecord(store, request.volumeId));
      return {};
    },
    async volumeCommit(request, call) {
      const view = callerView(store, request.volumeId, call, 'commit');
      await serialized(view.volume, () => commit(view));
      return { skipReload: false };
    },
    async volumeReload(request, call) {
      const view = callerView(store, request.volumeId, call, 'reload');
      await serialized(view.volume, () => reload(view));
      return {};
    },
    async taskReloadVolumes(request) {
      const found = state.runningTask(request.taskId);
      if (request.containerId)
        throw new RpcError(
          grpc.status.FAILED_PRECONDITION,
          `TaskReloadVolumes: the emulator reloads no sidecar volumes (${request.containerId})`,
        );
      for (const view of store.views.get(found.id) ?? []) await serialized(view.volume, () => reload(view));
      return {};
    },
  };
}

async function createVolume(store: VolumeStore, key: string, request: Json, ephemeral: boolean): Promise<VolumeRecord> {
  if (!ephemeral && request.objectCreationType !== 1)
    throw new RpcError(grpc.status.NOT_FOUND, `Volume '${request.deploymentName}' not found`);
  if (request.version !== 0 && request.version !== 1 && request.version !== 2)
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `version: unknown volume file system version ${request.version}`);
  const id = `vo-${randomToken(22)}`;
  const dir = join(store.state.stateDir, 'volumes', id);
  await writableDir(dir);
  const record: VolumeRecord = {
    id,
    key,
    dir,
    version: request.version || 1,
    name: ephemeral ? '' : request.deploymentName,
    deleted: false,
    queue: Promise.resolve(),
  };
  store.records.set(id, record);
  store.state.volumes.set(key, { id, dir });
  store.state.volumeDirs.set(id, dir);
  return record;
}

function heartbeat(store: VolumeStore, record: VolumeRecord): void {
  clearTimeout(record.expiry);
  record.expiry = setTimeout(() => void deleteVolume(store, record), store.ephemeralTimeoutMs);
  // The emulator may close before an ephemeral volume expires; its state dir goes with it.
  record.expiry.unref();
}

async function deleteVolume(store: VolumeStore, record: VolumeRecord): Promise<void> {
  clearTimeout(record.expiry);
  record.deleted = true;
  store.records.delete(record.id);
  store.state.volumes.delete(record.key);
  store.state.volumeDirs.delete(record.id);
  // Views of running sandboxes keep their copies; their commits are dropped.
  await serialized(record, () => rm(record.dir, { recursive: true, force: true }));
}

function liveRecord(store: VolumeStore, id: string): VolumeRecord {
  const record = store.records.get(id);
  if (!record) throw new RpcError(grpc.status.NOT_FOUND, `Volume ${id} not found`);
  return record;
}

/**
 * The view a container-side call (VolumeCommit, VolumeReload) acts on: Modal knows the calling
 * container from its credentials; here the caller names its task in `x-modal-task-id`, or the
 * volume must be mounted (read-write, for a commit) in exactly one running sandbox.
 */
function callerView(store: VolumeStore, volumeId: string, call: RpcCall, purpose: 'commit' | 'reload'): VolumeView {
  liveRecord(store, volumeId);
  const taskId = String(call.metadata.get('x-modal-task-id')[0] ?? '');
  const candidates = [...store.views.entries()]
    .filter(([sandboxId]) => !taskId || store.state.sandboxes.get(sandboxId)?.data.taskId === taskId)
    .flatMap(([, views]) => views.filter((view) => view.volume.id === volumeId && (purpose === 'reload' || !view.readOnly)));
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0)
    throw new RpcError(
      grpc.status.NOT_FOUND,
      `Volume ${volumeId} is not mounted ${purpose === 'commit' ? 'read-write ' : ''}in a running sandbox`,
    );
  throw new RpcError(
    grpc.status.FAILED_PRECONDITION,
    `Volume ${volumeId} is mounted in ${candidates.length} sandboxes: name the calling task in x-modal-task-id metadata`,
  );
}

/** What `createSandbox` needs for the volume mounts of a definition. */
export interface MountedVolumes {
  volumes: NonNullable<CreateSandboxOptions['volumes']>;
  /** Records the views as the sandbox's: committed and removed when it ends. */
  attach(found: EmulatedSandbox): void;
  /** Removes the views of a create that failed. */
  discard(): Promise<void>;
}

/** Makes each mount's view (a copy of the committed state under its subPath, created if missing). */
export async function mountVolumes(state: ModalState, mounts: Json[]): Promise<MountedVolumes> {
  const store = storeOf(state);
  const seen = new Set<string>();
  const planned = mounts.map((mount) => {
    const path = String(mount.mountPath);
    if (!path.startsWith('/') || posix.normalize(path) === '/')
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `Volume mount path must be an absolute path other than /, got "${path}"`);
    const record = liveRecord(store, mount.volumeId);
    if (seen.has(record.id)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Volume ${record.id} is mounted at more than one path`);
    seen.add(record.id);
    return { mount, record, subPath: normalizeSubPath(mount.subPath ?? '') };
  });
  const root = join(state.stateDir, 'volume-views', randomToken(12));
  const views: VolumeView[] = [];
  const volumes: MountedVolumes['volumes'] = {};
  try {
    for (const { mount, record, subPath } of planned) {
      const view: VolumeView = {
        volume: record,
        dir: join(root, String(views.length)),
        mountPath: posix.normalize(mount.mountPath),
        subPath,
        readOnly: Boolean(mount.readOnly),
        manifest: new Map(),
      };
      await writableDir(view.dir);
      await serialized(record, () => refresh(view));
      views.push(view);
      volumes[mount.mountPath] = { source: view.dir, readOnly: view.readOnly };
    }
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  return {
    volumes,
    attach(found) {
      if (views.length === 0) return;
      store.views.set(found.id, views);
      store.released.set(
        found.id,
        found.ended.then(async () => {
          store.views.delete(found.id);
          for (const view of views) await serialized(view.volume, () => commit(view)).catch(() => undefined);
          await rm(root, { recursive: true, force: true });
        }),
      );
    },
    discard: () => rm(root, { recursive: true, force: true }),
  };
}

/**
 * Modal's in-sandbox commit of a v2 volume: an exec of `sync` whose every argument is the mount
 * point of a read-write v2 volume commits those volumes and exits 0. Anything else (no
 * arguments, other paths, v1 volumes) is undefined: the caller runs it as any command.
 */
export async function syncVolumes(state: ModalState, found: EmulatedSandbox, argv: readonly string[]): Promise<ExecRecord | undefined> {
  if (!['sync', '/bin/sync', '/usr/bin/sync'].includes(argv[0] ?? '') || argv.length < 2) return undefined;
  const views = storeOf(state).views.get(found.id) ?? [];
  const targets = argv.slice(1).map((path) => views.find((view) => view.mountPath === posix.normalize(path)));
  if (!targets.every((view) => view && view.volume.version === 2 && !view.readOnly)) return undefined;
  for (const view of targets as VolumeView[]) await serialized(view.volume, () => commit(view));
  return ExecRecord.finished(new Uint8Array(), new Uint8Array(), 0);
}

/** Settles once an ended sandbox's volume writes were committed (Modal commits on exit). */
export function volumesReleased(state: ModalState, found: EmulatedSandbox): Promise<void> {
  return storeOf(state).released.get(found.id) ?? Promise.resolve();
}

function normalizeSubPath(subPath: string): string {
  const normalized = posix.normalize(`/${subPath}`).slice(1).replace(/\/$/, '');
  if (normalized.split('/').includes('..')) throw new RpcError(grpc.status.INVALID_ARGUMENT, `subPath: "${subPath}" leaves the volume`);
  return normalized;
}

/** Publishes what changed in the view since its manifest was taken. */
async function commit(view: VolumeView): Promise<void> {
  if (view.readOnly || view.volume.deleted) return;
  const target = join(view.volume.dir, view.subPath);
  await writableDirs(view.volume.dir, view.subPath);
  const now = await scan(view.dir);
  for (const [path, signature] of now) {
    if (view.manifest.get(path) === signature) continue;
    const destination = join(target, path);
    if (signature === 'd') {
      const existing = await lstat(destination).catch(() => undefined);
      if (existing && !existing.isDirectory()) await rm(destination, { recursive: true, force: true });
      if (!existing?.isDirectory()) await copyDir(join(view.dir, path), destination);
    } else {
      await rm(destination, { recursive: true, force: true });
      await copy(['-a', '--no-target-directory'], join(view.dir, path), destination);
    }
  }
  const removed = [...view.manifest.keys()]
    .filter((path) => !now.has(path))
    .sort()
    .reverse();
  for (const path of removed) await rm(join(target, path), { recursive: true, force: true });
  view.manifest = now;
}

/** Commits the view's own changes, then replaces it with the committed state. */
async function reload(view: VolumeView): Promise<void> {
  await commit(view);
  await refresh(view);
}

/** Replaces the view's contents (in place: it is bind-mounted) with the committed state. */
async function refresh(view: VolumeView): Promise<void> {
  if (view.volume.deleted) return;
  await writableDirs(view.volume.dir, view.subPath);
  for (const name of await readdir(view.dir)) await rm(join(view.dir, name), { recursive: true, force: true });
  await copy(['-a'], `${join(view.volume.dir, view.subPath)}/.`, `${view.dir}/`);
  view.manifest = await scan(view.dir);
}

/** Every entry under `dir` with a signature that changes when the entry does. */
async function scan(dir: string, prefix = '', into = new Map<string, string>()): Promise<Map<string, string>> {
  for (const name of (await readdir(join(dir, prefix))).sort()) {
    const path = prefix ? `${prefix}/${name}` : name;
    const info = await lstat(join(dir, path), { bigint: true });
    if (info.isDirectory()) {
      into.set(path, 'd');
      await scan(dir, path, into);
    } else if (info.isSymbolicLink()) {
      into.set(path, `l:${await readlink(join(dir, path))}`);
    } else {
      into.set(path, `f:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`);
    }
  }
  return into;
}

/** Runs `task` after every earlier commit or reload of the volume. */
function serialized<T>(record: VolumeRecord, task: () => Promise<T>): Promise<T> {
  const run = record.queue.then(task);
  record.queue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

/** A directory the sandbox's user can write (its root maps to an unprivileged host uid). */
async function writableDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
}

/** Creates `sub` under `root` component by component, each writable to the sandbox. */
async function writableDirs(root: string, sub: string): Promise<void> {
  let dir = root;
  for (const part of sub ? sub.split('/') : []) {
    dir = join(dir, part);
    const existing = await lstat(dir).catch(() => undefined);
    if (existing?.isDirectory()) continue;
    if (existing) throw new RpcError(grpc.status.FAILED_PRECONDITION, `subPath: ${sub} is not a directory in the volume`);
    await writableDir(dir);
  }
}

/** An empty directory with the mode and owner of `source`. */
async function copyDir(source: string, target: string): Promise<void> {
  const info = await lstat(source);
  await mkdir(target);
  await chmod(target, info.mode & 0o7777);
  // Only root can give a directory to the sandbox's uid; others already own what they make.
  await chown(target, info.uid, info.gid).catch(() => undefined);
}

/** `cp` with these flags, as the emulator's user (as root it keeps the sandbox's ownership). */
function copy(flags: string[], source: string, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', [...flags, source, target], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new RpcError(grpc.status.FAILED_PRECONDITION, `emulator: cp exited ${code}: ${stderr.trim()}`)),
    );
  });
}
