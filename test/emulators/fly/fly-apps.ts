/**
 * Apps and volumes of Fly's Machines API:
 * - `POST /v1/apps` `{ app_name, org_slug, network? }`: 201 with an empty body; a name already
 *   taken is 422 `{ error, status: 'name_taken' }` (app names are global on Fly); app names are
 *   lowercase letters, digits and dashes (400 otherwise). `GET /v1/apps?org_slug=`:
 *   `{ total_apps, apps: [{ id, name, machine_count, network }] }`. `GET /v1/apps/{app}`:
 *   `{ id, name, organization: { name, slug }, status }`. `DELETE /v1/apps/{app}`: 202, its
 *   machines and volumes go with it. An unknown app is 404 `app not found`.
 * - `POST /v1/apps/{app}/volumes` `{ name, size_gb, region? }` (a name of lowercase letters,
 *   digits and underscores, at most 30; `size_gb` 1 to 500, 3 by default): 200 with the volume.
 *   `GET …/volumes` (not destroyed ones), `GET …/volumes/{id}`, `DELETE …/volumes/{id}` (200, the
 *   volume with state `destroyed`; a volume attached to a machine that is not destroyed is 412).
 *   A volume is a host directory: what one machine writes to its mount, the next machine that
 *   mounts it reads. Extend, snapshots and forks are not served (404 naming the call).
 */
import { z } from 'zod';
import { FlyHttpError, type FlyAnswer, type FlyRequest, type FlyRoute } from './fly-http.js';
import type { FlyState } from './fly-state.js';

const appNamePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const createAppSchema = z.looseObject({ app_name: z.string(), org_slug: z.string().min(1), network: z.string().optional() });
const createVolumeSchema = z.looseObject({
  name: z.string().regex(/^[a-z0-9_]{1,30}$/, { message: 'must be 1-30 lowercase letters, digits and underscores' }),
  size_gb: z.number().int().min(1).max(500).optional(),
  region: z.string().min(1).optional(),
  snapshot_id: z.string().optional(),
  source_volume_id: z.string().optional(),
});

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FlyHttpError(400, `invalid_argument: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

async function createApp(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const body = parse(createAppSchema, await request.json());
  if (!appNamePattern.test(body.app_name)) {
    throw new FlyHttpError(
      400,
      'invalid_argument: app_name: lowercase letters, digits and dashes, starting and ending with a letter or digit',
    );
  }
  if (state.apps.has(body.app_name))
    throw new FlyHttpError(422, 'Name has already been taken', { error: 'Name has already been taken', status: 'name_taken' });
  state.apps.set(body.app_name, {
    id: state.newAppId(),
    name: body.app_name,
    orgSlug: body.org_slug,
    network: body.network ?? 'default',
    createdAt: Date.now(),
  });
  return { status: 201 };
}

function listApps(state: FlyState, request: FlyRequest): FlyAnswer {
  const org = request.url.searchParams.get('org_slug');
  const apps = [...state.apps.values()].filter((app) => !org || app.orgSlug === org);
  return {
    status: 200,
    body: {
      total_apps: apps.length,
      apps: apps.map((app) => ({ id: app.id, name: app.name, machine_count: state.machinesOf(app.name).length, network: app.network })),
    },
  };
}

async function deleteApp(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const app = state.app(request.params.app!);
  state.apps.delete(app.name);
  const machines = state.machinesOf(app.name, true);
  await Promise.all(machines.filter((machine) => !machine.destroyed).map((machine) => machine.destroy()));
  // A new app of the same name starts without the old one's machines (even with include_deleted).
  for (const machine of machines) state.machines.delete(machine.id);
  await state.edge?.closeApp(app.name);
  for (const volume of state.volumes.values())
    if (volume.app === app.name && volume.state !== 'destroyed') await state.destroyVolume(volume);
  return { status: 202 };
}

async function createVolume(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const app = state.app(request.params.app!).name;
  const body = parse(createVolumeSchema, await request.json());
  if (body.snapshot_id || body.source_volume_id) {
    throw new FlyHttpError(400, 'invalid_argument: volumes from snapshots or forks are not implemented by the Fly emulator');
  }
  const volume = await state.createVolume(app, { name: body.name, sizeGb: body.size_gb ?? 3, region: body.region ?? state.region });
  return { status: 200, body: state.volumeJson(volume) };
}

async function deleteVolume(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const volume = state.volume(request.params.app!, request.params.id!);
  if (volume.state === 'destroyed') throw new FlyHttpError(404, 'volume not found');
  const holder = volume.attachedMachineId ? state.machines.get(volume.attachedMachineId) : undefined;
  if (holder && !holder.destroyed) {
    throw new FlyHttpError(412, `failed_precondition: volume ${volume.id} is attached to machine ${holder.id}; destroy the machine first`);
  }
  await state.destroyVolume(volume);
  return { status: 200, body: state.volumeJson(volume) };
}

export function appRoutes(state: FlyState): FlyRoute[] {
  return [
    { method: 'POST', pattern: '/v1/apps', handle: (request) => createApp(state, request) },
    { method: 'GET', pattern: '/v1/apps', handle: async (request) => listApps(state, request) },
    {
      method: 'GET',
      pattern: '/v1/apps/:app',
      handle: async (request) => ({ status: 200, body: state.appJson(state.app(request.params.app!)) }),
    },
    { method: 'DELETE', pattern: '/v1/apps/:app', handle: (request) => deleteApp(state, request) },
    { method: 'POST', pattern: '/v1/apps/:app/volumes', handle: (request) => createVolume(state, request) },
    {
      method: 'GET',
      pattern: '/v1/apps/:app/volumes',
      handle: async (request) => {
        const app = state.app(request.params.app!).name;
        const volumes = [...state.volumes.values()].filter((volume) => volume.app === app && volume.state !== 'destroyed');
        return { status: 200, body: volumes.map((volume) => state.volumeJson(volume)) };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/apps/:app/volumes/:id',
      handle: async (request) => {
        const volume = state.volume(request.params.app!, request.params.id!);
        if (volume.state === 'destroyed') throw new FlyHttpError(404, 'volume not found');
        return { status: 200, body: state.volumeJson(volume) };
      },
    },
    { method: 'DELETE', pattern: '/v1/apps/:app/volumes/:id', handle: (request) => deleteVolume(state, request) },
  ];
}
