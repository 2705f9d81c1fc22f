/**
 * Daytona's sandbox API (`/api/sandbox...`, the SDK's `SandboxApi`), on the state of
 * daytona-state.ts:
 * - `POST /sandbox` creates from the default snapshot, a named snapshot, or a Dockerfile
 *   (`buildInfo`, what `image` sends), with labels, env, resources (cpu, memory and disk in GiB;
 *   a GPU type is checked, a GPU count is refused with a 501: no GPUs here),
 *   auto-stop / auto-pause / auto-archive / auto-delete intervals and a TTL (minutes), network
 *   settings (`networkBlockAll`, `networkAllowList` as a comma string of CIDRs, `domainAllowList`
 *   as a comma string of domains), volumes and `public`. It answers once the sandbox is `started`
 *   (the state changes are also announced to event subscribers). A duplicate name is a 409.
 * - get by id or name, list with label / state / name / id filters and cursor pagination
 *   (`limit`, `nextCursor`), start, stop, pause, archive, delete, labels, the interval setters,
 *   network settings (applied to the running sandbox), `public`, last activity, the toolbox
 *   proxy URL, snapshots of a sandbox and forks.
 * - preview links (daytona-preview.ts serves them): `ports/:port/preview-url` gives
 *   `{ sandboxId, url, token }`, `signed-preview-url?expiresInSeconds=` a URL carrying its token,
 *   which `…/signed-preview-url/:token/expire` revokes.
 * Errors are Daytona's API bodies (`{ statusCode, message, error }`): 404 for an unknown sandbox,
 * 409 for a name taken, 400 for a bad body or a change the state does not allow.
 */
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { SandboxCapabilityUnsupportedError, type CreateSandboxOptions, type SandboxSnapshotRef } from '../../../src/kit/index.js';
import { BuildFailure, buildDockerfile } from './daytona-builds.js';
import { HttpError, sendJson, type DaytonaRequest, type DaytonaRoute } from './daytona-http.js';
import { defaultRootfs, defaultSnapshotName, type LocalImage } from './daytona-images.js';
import { DaytonaState, organizationId, type DaytonaSandbox, type SandboxStateName } from './daytona-state.js';
import { previewUrl, signedPreviewUrl } from './daytona-preview.js';
import { findSnapshot, registerSnapshot } from './daytona-snapshots.js';

const intervalSchema = z.number().int().min(-1);

/** Daytona's GPU types (the API's `GpuType` values): an unknown one is a 400, as the API's validation answers. */
const gpuTypes = ['H100', 'H200', 'B300', 'RTX-PRO-6000', 'RTX-4090', 'RTX-5090', 'MI355X'] as const;

const createSchema = z.object({
  name: z.string().min(1).max(255).optional(),
  snapshot: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  public: z.boolean().optional(),
  networkBlockAll: z.boolean().optional(),
  networkAllowList: z.string().optional(),
  domainAllowList: z.string().optional(),
  target: z.string().optional(),
  cpu: z.number().int().positive().optional(),
  gpu: z.number().int().min(0).optional(),
  gpuType: z
    .array(z.enum(gpuTypes, { message: `each value in gpuType must be one of the following values: ${gpuTypes.join(', ')}` }))
    .optional(),
  memory: z.number().int().positive().optional(),
  disk: z.number().int().positive().optional(),
  autoStopInterval: intervalSchema.optional(),
  autoPauseInterval: intervalSchema.optional(),
  autoArchiveInterval: intervalSchema.optional(),
  autoDeleteInterval: intervalSchema.optional(),
  ttlMinutes: z.number().int().min(0).optional(),
  volumes: z
    .array(z.object({ volumeId: z.string().min(1), mountPath: z.string().startsWith('/'), subpath: z.string().optional() }))
    .optional(),
  buildInfo: z.object({ dockerfileContent: z.string().min(1), contextHashes: z.array(z.string()).optional() }).optional(),
  secrets: z.array(z.record(z.string(), z.string())).optional(),
});

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new HttpError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return result.data;
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

const desired: Partial<Record<SandboxStateName, string>> = {
  creating: 'started',
  started: 'started',
  starting: 'started',
  stopping: 'stopped',
  stopped: 'stopped',
  archiving: 'archived',
  archived: 'archived',
  pausing: 'paused',
  paused: 'paused',
  snapshotting: 'started',
  destroying: 'destroyed',
  destroyed: 'destroyed',
};

/** The sandbox as the API returns it (the SDK's `Sandbox` DTO). */
export function sandboxDto(state: DaytonaState, sandbox: DaytonaSandbox) {
  return {
    id: sandbox.id,
    organizationId,
    name: sandbox.name,
    snapshot: sandbox.snapshot,
    user: sandbox.user,
    env: sandbox.env,
    labels: sandbox.labels,
    public: sandbox.public,
    networkBlockAll: sandbox.networkBlockAll,
    networkAllowList: sandbox.networkAllowList,
    domainAllowList: sandbox.domainAllowList,
    target: 'us',
    cpu: sandbox.cpu,
    gpu: sandbox.gpu,
    memory: sandbox.memory,
    disk: sandbox.disk,
    state: sandbox.state,
    desiredState: desired[sandbox.state],
    errorReason: sandbox.errorReason,
    recoverable: false,
    backupState: 'None',
    autoStopInterval: sandbox.autoStopInterval,
    autoPauseInterval: sandbox.autoPauseInterval,
    autoArchiveInterval: sandbox.autoArchiveInterval,
    autoDeleteInterval: sandbox.autoDeleteInterval,
    autoDestroyAt: iso(sandbox.autoDestroyAt),
    volumes: sandbox.volumes,
    buildInfo: sandbox.buildInfo && {
      ...sandbox.buildInfo,
      createdAt: iso(sandbox.createdAt),
      updatedAt: iso(sandbox.createdAt),
      snapshotRef: sandbox.id,
    },
    createdAt: iso(sandbox.createdAt),
    updatedAt: iso(sandbox.updatedAt),
    lastActivityAt: iso(sandbox.lastActivityAt),
    sandboxClass: 'container',
    daemonVersion: '0.218.0',
    runnerId: 'runner-sandport-emulator',
    toolboxProxyUrl: state.toolboxProxyUrl,
    kvm: false,
  };
}

/** The local image a create asks for, built or looked up; also the snapshot name it records. */
async function resolveImage(
  state: DaytonaState,
  body: z.infer<typeof createSchema>,
): Promise<{ image: LocalImage; snapshot: string | undefined }> {
  if (body.snapshot !== undefined && body.buildInfo !== undefined) throw new HttpError(400, 'Cannot specify both snapshot and buildInfo');
  if (body.buildInfo) {
    try {
      return { image: await buildDockerfile(state.provider, body.buildInfo.dockerfileContent, () => undefined), snapshot: undefined };
    } catch (error) {
      if (error instanceof BuildFailure) throw new HttpError(400, error.message);
      throw error;
    }
  }
  if (body.snapshot === undefined || body.snapshot === defaultSnapshotName) {
    return { image: { image: defaultRootfs(), env: {}, workdir: undefined, imageName: undefined }, snapshot: defaultSnapshotName };
  }
  const snapshot = findSnapshot(state, body.snapshot);
  if (snapshot.state !== 'active' || !snapshot.image) throw new HttpError(400, `Snapshot ${body.snapshot} is ${snapshot.state}`);
  snapshot.lastUsedAt = Date.now();
  return { image: snapshot.image, snapshot: snapshot.name };
}

function nameTaken(state: DaytonaState, name: string): boolean {
  for (const sandbox of state.sandboxes.values()) if (sandbox.name === name && sandbox.state !== 'destroyed') return true;
  return false;
}

function localVolumes(state: DaytonaState, volumes: z.infer<typeof createSchema>['volumes']): Record<string, string> {
  const mounts: Record<string, string> = {};
  for (const mount of volumes ?? []) {
    const volume = state.volumes.get(mount.volumeId) ?? [...state.volumes.values()].find((candidate) => candidate.name === mount.volumeId);
    if (volume?.state !== 'ready') throw new HttpError(404, `Volume ${mount.volumeId} not found`);
    volume.lastUsedAt = Date.now();
    mounts[mount.mountPath] = state.volumeDirectory(volume, mount.subpath);
  }
  return mounts;
}

interface NewSandbox {
  name: string | undefined;
  user: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  public: boolean;
  network: { networkBlockAll: boolean; networkAllowList: string | undefined; domainAllowList: string | undefined };
  resources: { cpu: number | undefined; memory: number | undefined; disk: number | undefined; gpu: number };
  intervals: { autoStopInterval: number; autoPauseInterval: number; autoArchiveInterval: number; autoDeleteInterval: number };
  ttlMinutes: number | undefined;
  volumes: DaytonaSandbox['volumes'];
  localVolumes: Record<string, string>;
  buildInfo: DaytonaSandbox['buildInfo'];
  image: LocalImage;
  snapshot: string | undefined;
}

/** Registers and launches a sandbox; answers once it is started (or throws, leaving it in error). */
export async function launchSandbox(state: DaytonaState, spec: NewSandbox): Promise<DaytonaSandbox> {
  const id = state.newSandboxId();
  const home = spec.user === 'root' ? '/root' : `/home/${spec.user}`;
  const now = Date.now();
  const localOptions: Omit<CreateSandboxOptions, 'image'> = {
    env: { HOME: home, USER: spec.user, LOGNAME: spec.user, ...spec.image.env, ...spec.env },
    workdir: spec.image.workdir ?? home,
    ...(Object.keys(spec.localVolumes).length > 0 && { volumes: spec.localVolumes }),
    ...(spec.resources.cpu !== undefined && { cpu: spec.resources.cpu }),
    ...(spec.resources.memory !== undefined && { memoryMiB: spec.resources.memory * 1024 }),
  };
  const sandbox: DaytonaSandbox = {
    id,
    name: spec.name ?? id,
    state: 'creating',
    errorReason: undefined,
    snapshot: spec.snapshot,
    user: spec.user,
    home,
    env: spec.env,
    labels: spec.labels,
    public: spec.public,
    ...spec.network,
    cpu: spec.resources.cpu ?? 1,
    gpu: spec.resources.gpu,
    memory: spec.resources.memory ?? 1,
    disk: spec.resources.disk ?? 3,
    ...spec.intervals,
    autoDestroyAt: spec.ttlMinutes ? now + spec.ttlMinutes * 60_000 : undefined,
    volumes: spec.volumes,
    buildInfo: spec.buildInfo,
    createdAt: now,
    updatedAt: now,
    lastActivityAt: now,
    local: undefined,
    image: spec.image,
    localOptions,
    previewToken: state.newPreviewToken(),
    signedPreviews: new Map(),
    daemonEnv: {},
    timers: new Map(),
    lifecycle: Promise.resolve(),
    extra: new Map(),
  };
  state.sandboxes.set(id, sandbox);
  state.announceCreated(sandbox);
  try {
    await state.launch(sandbox);
  } catch (error) {
    state.setState(sandbox, 'error', error instanceof Error ? error.message : String(error));
    if (error instanceof Error && /capabilit|cannot enforce/i.test(error.message)) throw new HttpError(400, error.message);
    throw error;
  }
  state.setState(sandbox, 'started');
  state.touch(sandbox);
  return sandbox;
}

async function createSandbox(state: DaytonaState, request: DaytonaRequest, response: ServerResponse): Promise<void> {
  const body = parse(createSchema, await request.json());
  if (body.name !== undefined && nameTaken(state, body.name)) throw new HttpError(409, `Sandbox with name ${body.name} already exists`);
  if (body.autoStopInterval && body.autoPauseInterval)
    throw new HttpError(400, 'autoStopInterval and autoPauseInterval are mutually exclusive');
  if ((body.gpu ?? 0) > 0) {
    // This machine has no GPUs to give: refused loudly rather than started without one.
    throw new HttpError(501, `The Daytona emulator has no GPUs: POST /api/sandbox with gpu ${body.gpu} is not emulated`);
  }
  if (body.secrets && body.secrets.length > 0) {
    throw new HttpError(
      501,
      'The Daytona emulator does not implement POST /api/sandbox with secrets (organization secrets are not emulated)',
    );
  }
  const volumes = localVolumes(state, body.volumes);
  const { image, snapshot } = await resolveImage(state, body);
  const sandbox = await launchSandbox(state, {
    name: body.name,
    user: body.user ?? 'daytona',
    env: body.env ?? {},
    labels: body.labels ?? {},
    public: body.public ?? false,
    network: {
      networkBlockAll: body.networkBlockAll ?? false,
      networkAllowList: body.networkAllowList,
      domainAllowList: body.domainAllowList,
    },
    resources: { cpu: body.cpu, memory: body.memory, disk: body.disk, gpu: body.gpu ?? 0 },
    intervals: {
      autoStopInterval: body.autoStopInterval ?? (body.autoPauseInterval ? 0 : 15),
      autoPauseInterval: body.autoPauseInterval ?? 0,
      autoArchiveInterval: body.autoArchiveInterval ?? 10080,
      autoDeleteInterval: body.autoDeleteInterval ?? -1,
    },
    ttlMinutes: body.ttlMinutes,
    volumes: body.volumes ?? [],
    localVolumes: volumes,
    buildInfo: body.buildInfo && { dockerfileContent: body.buildInfo.dockerfileContent, contextHashes: body.buildInfo.contextHashes ?? [] },
    image,
    snapshot,
  });
  sendJson(response, 200, sandboxDto(state, sandbox));
}

/** `?states=a&states=b` or `?states=a,b`. */
function listParam(url: URL, name: string): string[] {
  return url.searchParams
    .getAll(name)
    .flatMap((value) => value.split(','))
    .filter(Boolean);
}

function listSandboxes(state: DaytonaState, request: DaytonaRequest, response: ServerResponse): void {
  const url = request.url;
  let labels: Record<string, string> = {};
  const labelsParam = url.searchParams.get('labels');
  if (labelsParam) {
    try {
      labels = JSON.parse(labelsParam) as Record<string, string>;
    } catch {
      throw new HttpError(400, 'labels must be a JSON object');
    }
  }
  const states = listParam(url, 'states');
  const snapshots = listParam(url, 'snapshots');
  const id = url.searchParams.get('id');
  const name = url.searchParams.get('name');
  const limit = Math.min(200, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
  const offset = Number(url.searchParams.get('cursor') ?? 0) || 0;
  const ascending = url.searchParams.get('order') === 'asc';
  const sort = url.searchParams.get('sort') ?? 'createdAt';
  const matching = [...state.sandboxes.values()]
    .filter((sandbox) => sandbox.state !== 'destroyed')
    .filter((sandbox) => Object.entries(labels).every(([key, value]) => sandbox.labels[key] === value))
    .filter((sandbox) => states.length === 0 || states.includes(sandbox.state))
    .filter((sandbox) => snapshots.length === 0 || (sandbox.snapshot !== undefined && snapshots.includes(sandbox.snapshot)))
    .filter((sandbox) => !id || sandbox.id.startsWith(id))
    .filter((sandbox) => !name || sandbox.name.includes(name))
    .sort((a, b) => {
      const key = (sandbox: DaytonaSandbox) =>
        sort === 'name' ? sandbox.name : sort === 'updatedAt' ? sandbox.updatedAt : sandbox.createdAt;
      const order = key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
      return ascending ? order : -order;
    });
  const page = matching.slice(offset, offset + limit);
  const nextCursor = offset + limit < matching.length ? String(offset + limit) : null;
  sendJson(response, 200, { items: page.map((sandbox) => sandboxDto(state, sandbox)), nextCursor });
}

function interval(request: DaytonaRequest, name: string): number {
  const value = Number(request.params[name]);
  if (!Number.isInteger(value) || value < -1) throw new HttpError(400, `${name} must be an integer`);
  return value;
}

/** Applies network settings to the running local sandbox (and to later starts). */
async function updateNetwork(sandbox: DaytonaSandbox, body: Record<string, unknown>): Promise<void> {
  const next = {
    networkBlockAll: typeof body.networkBlockAll === 'boolean' ? body.networkBlockAll : sandbox.networkBlockAll,
    networkAllowList: typeof body.networkAllowList === 'string' ? body.networkAllowList || undefined : sandbox.networkAllowList,
    domainAllowList: typeof body.domainAllowList === 'string' ? body.domainAllowList || undefined : sandbox.domainAllowList,
  };
  if (sandbox.local) {
    try {
      await sandbox.local.updateNetwork(DaytonaState.networkPolicy(next));
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      // Daytona applies any change live; the local sandbox cannot make some (opening one created
      // with an allowlist to everything, restricting one created open): those are not emulated.
      if (SandboxCapabilityUnsupportedError.isInstance(error)) {
        throw new HttpError(
          501,
          `POST /api/sandbox/${sandbox.id}/network-settings (updateNetworkSettings) is not emulated for this change: ${why}`,
        );
      }
      throw new HttpError(400, `The network settings cannot be applied to this sandbox: ${why}`);
    }
  }
  Object.assign(sandbox, next);
  sandbox.updatedAt = Date.now();
}

/** Copies a sandbox's filesystem (frozen meanwhile by the local provider) into a local snapshot. */
export async function captureFilesystem(sandbox: DaytonaSandbox): Promise<LocalImage> {
  if (!sandbox.local) throw new HttpError(400, `Sandbox ${sandbox.id} is not started (state: ${sandbox.state})`);
  const ref: SandboxSnapshotRef = await sandbox.local.snapshot();
  return { ...sandbox.image, image: ref };
}

export function sandboxRoutes(state: DaytonaState): DaytonaRoute[] {
  const answer = (response: ServerResponse, sandbox: DaytonaSandbox) => sendJson(response, 200, sandboxDto(state, sandbox));
  const lifecycle = (pattern: string, change: (sandbox: DaytonaSandbox, request: DaytonaRequest) => Promise<void>): DaytonaRoute => ({
    method: 'POST',
    pattern,
    async handle(request, response) {
      const sandbox = state.sandbox(request.params.idOrName!);
      await change(sandbox, request);
      answer(response, sandbox);
    },
  });
  const setter = (
    name: string,
    field: 'autoStopInterval' | 'autoPauseInterval' | 'autoArchiveInterval' | 'autoDeleteInterval',
  ): DaytonaRoute =>
    lifecycle(`/sandbox/:idOrName/${name}/:interval`, async (sandbox, request) => {
      sandbox[field] = interval(request, 'interval');
      if (field === 'autoStopInterval' && sandbox.autoStopInterval > 0) sandbox.autoPauseInterval = 0;
      if (field === 'autoPauseInterval' && sandbox.autoPauseInterval > 0) sandbox.autoStopInterval = 0;
      sandbox.updatedAt = Date.now();
      state.armIdleTimers(sandbox);
    });
  return [
    { method: 'POST', pattern: '/sandbox', handle: (request, response) => createSandbox(state, request, response) },
    { method: 'GET', pattern: '/sandbox', handle: async (request, response) => listSandboxes(state, request, response) },
    {
      method: 'GET',
      pattern: '/sandbox/:idOrName',
      handle: async (request, response) => answer(response, state.sandbox(request.params.idOrName!)),
    },
    {
      method: 'DELETE',
      pattern: '/sandbox/:idOrName',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.idOrName!);
        await state.destroy(sandbox);
        answer(response, sandbox);
      },
    },
    lifecycle('/sandbox/:idOrName/start', (sandbox) => state.start(sandbox)),
    lifecycle('/sandbox/:idOrName/stop', (sandbox) => state.stop(sandbox)),
    lifecycle('/sandbox/:idOrName/pause', (sandbox) => state.pause(sandbox)),
    lifecycle('/sandbox/:idOrName/archive', (sandbox) => state.archive(sandbox)),
    lifecycle('/sandbox/:idOrName/recover', async (sandbox) => {
      if (sandbox.state !== 'error') throw new HttpError(400, `Sandbox ${sandbox.id} is not in an error state`);
      sandbox.errorReason = undefined;
      await state.start(sandbox);
    }),
    {
      method: 'PUT',
      pattern: '/sandbox/:idOrName/labels',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.idOrName!);
        const body = parse(z.object({ labels: z.record(z.string(), z.string()) }), await request.json());
        sandbox.labels = body.labels;
        sandbox.updatedAt = Date.now();
        sendJson(response, 200, { labels: sandbox.labels });
      },
    },
    setter('autostop', 'autoStopInterval'),
    setter('autopause', 'autoPauseInterval'),
    setter('autoarchive', 'autoArchiveInterval'),
    setter('autodelete', 'autoDeleteInterval'),
    lifecycle('/sandbox/:idOrName/ttl/:ttlMinutes', async (sandbox, request) => {
      const minutes = interval(request, 'ttlMinutes');
      // Re-anchored at now; 0 removes the TTL.
      sandbox.autoDestroyAt = minutes > 0 ? Date.now() + minutes * 60_000 : undefined;
      state.armIdleTimers(sandbox);
    }),
    lifecycle('/sandbox/:idOrName/network-settings', async (sandbox, request) => updateNetwork(sandbox, await request.json())),
    lifecycle('/sandbox/:idOrName/public/:isPublic', async (sandbox, request) => {
      sandbox.public = request.params.isPublic === 'true';
    }),
    {
      method: 'POST',
      pattern: '/sandbox/:sandboxId/last-activity',
      async handle(request, response) {
        state.touch(state.sandbox(request.params.sandboxId!));
        response.writeHead(201).end();
      },
    },
    {
      method: 'GET',
      pattern: '/sandbox/:sandboxId/toolbox-proxy-url',
      handle: async (request, response) => {
        state.sandbox(request.params.sandboxId!);
        sendJson(response, 200, { url: state.toolboxProxyUrl });
      },
    },
    {
      method: 'GET',
      pattern: '/sandbox/:idOrName/ports/:port/preview-url',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.idOrName!);
        sendJson(response, 200, { sandboxId: sandbox.id, url: previewUrl(state, sandbox, port(request)), token: sandbox.previewToken });
      },
    },
    {
      method: 'GET',
      pattern: '/sandbox/:idOrName/ports/:port/signed-preview-url',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.idOrName!);
        const seconds = Number(request.url.searchParams.get('expiresInSeconds') ?? 60);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400)
          throw new HttpError(400, 'expiresInSeconds must be between 1 and 86400');
        const token = state.newPreviewToken();
        sandbox.signedPreviews.set(token, { port: port(request), expiresAt: Date.now() + seconds * 1000 });
        sendJson(response, 200, { sandboxId: sandbox.id, port: port(request), token, url: signedPreviewUrl(state, port(request), token) });
      },
    },
    {
      method: 'POST',
      pattern: '/sandbox/:idOrName/ports/:port/signed-preview-url/:token/expire',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.idOrName!);
        sandbox.signedPreviews.delete(request.params.token!);
        response.writeHead(200).end();
      },
    },
    lifecycle('/sandbox/:idOrName/snapshot', async (sandbox, request) => {
      const body = parse(z.object({ name: z.string().min(1) }), await request.json());
      if ([...state.snapshots.values()].some((snapshot) => snapshot.name === body.name)) {
        throw new HttpError(409, `Snapshot with name ${body.name} already exists`);
      }
      await state.serialise(sandbox, async () => {
        if (sandbox.state !== 'started') throw new HttpError(400, `Sandbox ${sandbox.id} is not started (state: ${sandbox.state})`);
        state.setState(sandbox, 'snapshotting');
        try {
          const image = await captureFilesystem(sandbox);
          registerSnapshot(state, {
            name: body.name,
            image,
            sourceSandboxId: sandbox.id,
            cpu: sandbox.cpu,
            mem: sandbox.memory,
            disk: sandbox.disk,
          });
        } finally {
          state.setState(sandbox, 'started');
        }
      });
    }),
    {
      method: 'POST',
      pattern: '/sandbox/:idOrName/fork',
      async handle(request, response) {
        const source = state.sandbox(request.params.idOrName!);
        const body = parse(z.object({ name: z.string().min(1).optional() }), await request.json());
        if (body.name !== undefined && nameTaken(state, body.name))
          throw new HttpError(409, `Sandbox with name ${body.name} already exists`);
        const image = await state.serialise(source, () => captureFilesystem(source));
        const fork = await launchSandbox(state, {
          name: body.name,
          user: source.user,
          env: { ...source.env },
          labels: { ...source.labels },
          public: source.public,
          network: {
            networkBlockAll: source.networkBlockAll,
            networkAllowList: source.networkAllowList,
            domainAllowList: source.domainAllowList,
          },
          resources: {
            cpu: source.localOptions.cpu,
            memory: source.localOptions.memoryMiB === undefined ? undefined : source.memory,
            disk: source.disk,
            gpu: source.gpu,
          },
          intervals: {
            autoStopInterval: source.autoStopInterval,
            autoPauseInterval: source.autoPauseInterval,
            autoArchiveInterval: source.autoArchiveInterval,
            autoDeleteInterval: source.autoDeleteInterval,
          },
          ttlMinutes: undefined,
          volumes: source.volumes,
          localVolumes: (source.localOptions.volumes as Record<string, string> | undefined) ?? {},
          buildInfo: source.buildInfo,
          image,
          snapshot: source.snapshot,
        });
        answer(response, fork);
      },
    },
  ];
}

function port(request: DaytonaRequest): number {
  const value = Number(request.params.port);
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new HttpError(400, 'port must be between 1 and 65535');
  return value;
}
