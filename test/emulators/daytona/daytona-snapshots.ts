/**
 * Daytona's snapshots (`/api/snapshots`) and volumes (`/api/volumes`):
 * - snapshots: the default `daytona-small` (general, always there), those made by
 *   `sandbox.createSnapshot(name)` (the local provider's snapshot of the sandbox), and those
 *   `daytona.snapshot.create({ name, image })` builds (a registry name runs on the default rootfs;
 *   a declarative `Image` is built, see daytona-builds.ts). The create answers once the build is
 *   over, in state `active`, or `build_failed` with its `errorReason`. List pages by
 *   `page`/`limit`; get by id or name; delete; activate / deactivate.
 * - volumes: a host directory each (under the emulator's volumes directory) that sandboxes
 *   mount at `volumes[].mountPath` (optionally a `subpath` of it). Get by id or by name, list,
 *   create (409 for a name taken), delete.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BuildFailure, buildDockerfile } from './daytona-builds.js';
import { HttpError, sendJson, type DaytonaRoute } from './daytona-http.js';
import { defaultRootfs, defaultSnapshotName, registryImage, type LocalImage } from './daytona-images.js';
import { organizationId, type DaytonaSnapshotRecord, type DaytonaState, type DaytonaVolumeRecord } from './daytona-state.js';

export function findSnapshot(state: DaytonaState, idOrName: string): DaytonaSnapshotRecord {
  ensureDefaultSnapshot(state);
  const found = state.snapshots.get(idOrName) ?? [...state.snapshots.values()].find((snapshot) => snapshot.name === idOrName);
  if (!found || found.state === 'removing') throw new HttpError(404, `Snapshot ${idOrName} not found`);
  return found;
}

export interface NewSnapshot {
  name: string;
  image: LocalImage | undefined;
  sourceSandboxId?: string;
  cpu?: number;
  mem?: number;
  disk?: number;
  general?: boolean;
  buildInfo?: DaytonaSnapshotRecord['buildInfo'];
  entrypoint?: string[];
  state?: DaytonaSnapshotRecord['state'];
  errorReason?: string;
  logs?: string[];
}

export function registerSnapshot(state: DaytonaState, spec: NewSnapshot): DaytonaSnapshotRecord {
  const now = Date.now();
  const record: DaytonaSnapshotRecord = {
    id: randomUUID(),
    name: spec.name,
    state: spec.state ?? 'active',
    imageName: spec.image?.imageName,
    entrypoint: spec.entrypoint ?? null,
    cpu: spec.cpu ?? 1,
    gpu: 0,
    mem: spec.mem ?? 1,
    disk: spec.disk ?? 3,
    errorReason: spec.errorReason ?? null,
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
    general: spec.general ?? false,
    buildInfo: spec.buildInfo,
    sourceSandboxId: spec.sourceSandboxId ?? null,
    image: spec.image,
    logs: spec.logs ?? [],
  };
  state.snapshots.set(record.id, record);
  return record;
}

/** Registers `daytona-small` on first use: it needs the rootfs, which may not be built yet. */
function ensureDefaultSnapshot(state: DaytonaState): void {
  if ([...state.snapshots.values()].some((snapshot) => snapshot.name === defaultSnapshotName)) return;
  let image: LocalImage | undefined;
  try {
    image = { image: defaultRootfs(), env: {}, workdir: undefined, imageName: 'daytonaio/sandbox' };
  } catch {
    return;
  }
  registerSnapshot(state, { name: defaultSnapshotName, image, general: true });
}

export function snapshotDto(snapshot: DaytonaSnapshotRecord) {
  return {
    id: snapshot.id,
    organizationId: snapshot.general ? undefined : organizationId,
    general: snapshot.general,
    name: snapshot.name,
    imageName: snapshot.imageName,
    state: snapshot.state,
    size: snapshot.state === 'active' ? 1 : null,
    entrypoint: snapshot.entrypoint,
    cpu: snapshot.cpu,
    gpu: snapshot.gpu,
    mem: snapshot.mem,
    disk: snapshot.disk,
    errorReason: snapshot.errorReason,
    createdAt: new Date(snapshot.createdAt).toISOString(),
    updatedAt: new Date(snapshot.updatedAt).toISOString(),
    lastUsedAt: snapshot.lastUsedAt === null ? null : new Date(snapshot.lastUsedAt).toISOString(),
    buildInfo: snapshot.buildInfo,
    regionIds: ['us'],
    sourceSandboxId: snapshot.sourceSandboxId,
    sandboxClass: 'container',
  };
}

function volumeDto(volume: DaytonaVolumeRecord) {
  return {
    id: volume.id,
    name: volume.name,
    organizationId,
    state: volume.state,
    createdAt: new Date(volume.createdAt).toISOString(),
    updatedAt: new Date(volume.updatedAt).toISOString(),
    lastUsedAt: volume.lastUsedAt === null ? null : new Date(volume.lastUsedAt).toISOString(),
    errorReason: null,
  };
}

const createSnapshotSchema = z.object({
  name: z.string().min(1),
  imageName: z.string().min(1).optional(),
  entrypoint: z.array(z.string()).optional(),
  cpu: z.number().int().positive().optional(),
  memory: z.number().int().positive().optional(),
  disk: z.number().int().positive().optional(),
  buildInfo: z.object({ dockerfileContent: z.string().min(1), contextHashes: z.array(z.string()).optional() }).optional(),
});

function findVolume(state: DaytonaState, idOrName: string, by: 'id' | 'name'): DaytonaVolumeRecord {
  const found =
    by === 'id'
      ? state.volumes.get(idOrName)
      : [...state.volumes.values()].find((volume) => volume.name === idOrName && volume.state !== 'deleted');
  if (!found || found.state === 'deleted') throw new HttpError(404, `Volume ${by === 'name' ? 'with name ' : ''}${idOrName} not found`);
  return found;
}

export function snapshotRoutes(state: DaytonaState): DaytonaRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/snapshots',
      async handle(request, response) {
        ensureDefaultSnapshot(state);
        const page = Math.max(1, Number(request.url.searchParams.get('page') ?? 1) || 1);
        const limit = Math.max(1, Math.min(200, Number(request.url.searchParams.get('limit') ?? 100) || 100));
        const name = request.url.searchParams.get('name');
        const source = request.url.searchParams.get('sourceSandboxId');
        const all = [...state.snapshots.values()]
          .filter((snapshot) => snapshot.state !== 'removing')
          .filter((snapshot) => !name || snapshot.name.includes(name))
          .filter((snapshot) => !source || snapshot.sourceSandboxId === source)
          .sort((a, b) => b.createdAt - a.createdAt);
        const items = all.slice((page - 1) * limit, page * limit).map(snapshotDto);
        sendJson(response, 200, { items, total: all.length, page, totalPages: Math.max(1, Math.ceil(all.length / limit)) });
      },
    },
    {
      method: 'GET',
      pattern: '/snapshots/:id',
      handle: async (request, response) => sendJson(response, 200, snapshotDto(findSnapshot(state, request.params.id!))),
    },
    {
      method: 'DELETE',
      pattern: '/snapshots/:id',
      async handle(request, response) {
        const snapshot = findSnapshot(state, request.params.id!);
        if (snapshot.general) throw new HttpError(403, `Snapshot ${snapshot.name} is a general snapshot and cannot be deleted`);
        state.snapshots.delete(snapshot.id);
        response.writeHead(200).end();
      },
    },
    {
      method: 'POST',
      pattern: '/snapshots',
      async handle(request, response) {
        const body = createSnapshotSchema.safeParse(await request.json());
        if (!body.success) throw new HttpError(400, body.error.issues[0]!.message);
        const spec = body.data;
        if ([...state.snapshots.values()].some((snapshot) => snapshot.name === spec.name && snapshot.state !== 'removing')) {
          throw new HttpError(409, `Snapshot with name ${spec.name} already exists`);
        }
        if (!spec.imageName && !spec.buildInfo) throw new HttpError(400, 'Either imageName or buildInfo must be provided');
        const logs: string[] = [];
        const common = { name: spec.name, cpu: spec.cpu, mem: spec.memory, disk: spec.disk, entrypoint: spec.entrypoint, logs };
        let record: DaytonaSnapshotRecord;
        try {
          const image = spec.buildInfo
            ? await buildDockerfile(state.provider, spec.buildInfo.dockerfileContent, (line) => logs.push(line))
            : registryImage(spec.imageName!);
          record = registerSnapshot(state, {
            ...common,
            image,
            buildInfo: spec.buildInfo && {
              dockerfileContent: spec.buildInfo.dockerfileContent,
              contextHashes: spec.buildInfo.contextHashes ?? [],
            },
          });
        } catch (error) {
          if (!(error instanceof BuildFailure)) throw error;
          record = registerSnapshot(state, { ...common, image: undefined, state: 'build_failed', errorReason: error.message });
        }
        sendJson(response, 200, snapshotDto(record));
      },
    },
    {
      method: 'POST',
      pattern: '/snapshots/:id/activate',
      async handle(request, response) {
        const snapshot = findSnapshot(state, request.params.id!);
        if (snapshot.state === 'inactive') snapshot.state = 'active';
        sendJson(response, 200, snapshotDto(snapshot));
      },
    },
    {
      method: 'POST',
      pattern: '/snapshots/:id/deactivate',
      async handle(request, response) {
        const snapshot = findSnapshot(state, request.params.id!);
        if (snapshot.state === 'active') snapshot.state = 'inactive';
        response.writeHead(204).end();
      },
    },
    {
      method: 'GET',
      pattern: '/volumes',
      async handle(request, response) {
        const includeDeleted = request.url.searchParams.get('includeDeleted') === 'true';
        const items = [...state.volumes.values()].filter((volume) => includeDeleted || volume.state !== 'deleted').map(volumeDto);
        sendJson(response, 200, items);
      },
    },
    {
      method: 'POST',
      pattern: '/volumes',
      async handle(request, response) {
        const body = z.object({ name: z.string().min(1) }).safeParse(await request.json());
        if (!body.success) throw new HttpError(400, 'name: must be a non-empty string');
        if ([...state.volumes.values()].some((volume) => volume.name === body.data.name && volume.state !== 'deleted')) {
          throw new HttpError(409, `Volume with name ${body.data.name} already exists`);
        }
        const id = randomUUID();
        const now = Date.now();
        const volume: DaytonaVolumeRecord = {
          id,
          name: body.data.name,
          state: 'ready',
          createdAt: now,
          updatedAt: now,
          lastUsedAt: null,
          directory: join(state.volumesDir, id),
        };
        state.volumeDirectory(volume);
        state.volumes.set(id, volume);
        sendJson(response, 200, volumeDto(volume));
      },
    },
    {
      method: 'GET',
      pattern: '/volumes/by-name/:name',
      handle: async (request, response) => sendJson(response, 200, volumeDto(findVolume(state, request.params.name!, 'name'))),
    },
    {
      method: 'GET',
      pattern: '/volumes/:volumeId',
      handle: async (request, response) => sendJson(response, 200, volumeDto(findVolume(state, request.params.volumeId!, 'id'))),
    },
    {
      method: 'DELETE',
      pattern: '/volumes/:volumeId',
      async handle(request, response) {
        const volume = findVolume(state, request.params.volumeId!, 'id');
        const inUse = [...state.sandboxes.values()].some(
          (sandbox) =>
            sandbox.state !== 'destroyed' &&
            // A mount names its volume by id or by name, as the create took it.
            sandbox.volumes.some((mount) => mount.volumeId === volume.id || mount.volumeId === volume.name),
        );
        if (inUse) throw new HttpError(409, `Volume ${volume.name} is in use by a sandbox`);
        volume.state = 'deleted';
        volume.updatedAt = Date.now();
        rmSync(volume.directory, { recursive: true, force: true });
        response.writeHead(200).end();
      },
    },
  ];
}
