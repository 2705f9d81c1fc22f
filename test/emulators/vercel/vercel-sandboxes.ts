/**
 * Sandboxes and sessions: create (`POST /v3/sandboxes` from an image, `/v2/sandboxes` from a
 * runtime; either with a git, tarball or snapshot `source`), get (with `?resume=true`), list
 * (cursor pagination, `namePrefix`, one `tags=key:value` filter, sort), update (`PATCH`), delete,
 * fork; a session's get, list, stop, extend-timeout and network policy. Validation follows
 * Vercel's limits: at most 15 ports, 5 tags, vCPUs of 1, 2, 4 or 8 (memory is 2048 MB per vCPU and
 * cannot be chosen), a timeout up to 24 hours; each refusal is a 400 naming the field.
 */
import type { ServerResponse } from 'node:http';
import {
  HttpError,
  badRequest,
  notEmulated,
  optionalBoolean,
  optionalNumber,
  optionalObject,
  optionalString,
  optionalStringRecord,
  sendJson,
  type VercelRequest,
  type VercelRoute,
} from './vercel-http.js';
import { defaultCwd, resolveImage, type ResolvedImage } from './vercel-images.js';
import { fromApiPolicy, planLocalNetwork, readPolicy, type RequestedPolicy } from './vercel-network.js';
import { randomToken } from '../shared/ids.js';
import {
  defaultTimeoutMs,
  maxPorts,
  maxTags,
  maxTimeoutMs,
  memoryPerVcpu,
  vcpuChoices,
  type KeepLastSnapshots,
  type VercelSandbox,
  type VercelSession,
  type VercelSnapshot,
  type VercelState,
} from './vercel-state.js';

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

function readPorts(value: unknown, field = 'ports'): number[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw badRequest(field, 'must be an array of port numbers');
  value.forEach((port, index) => {
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw badRequest(`${field}.${index}`, 'ports are whole numbers 1-65535');
    }
  });
  if (value.length > maxPorts) throw badRequest(field, `a sandbox exposes at most ${maxPorts} ports (got ${value.length})`);
  return [...new Set(value as number[])];
}

function readTags(body: Record<string, unknown>): Record<string, string> | undefined {
  const tags = optionalStringRecord(body, 'tags');
  if (tags && Object.keys(tags).length > maxTags) {
    throw badRequest('tags', `at most ${maxTags} tags (got ${Object.keys(tags).length})`);
  }
  return tags;
}

function readTimeout(body: Record<string, unknown>): number | undefined {
  const timeout = optionalNumber(body, 'timeout');
  if (timeout === undefined) return undefined;
  if (!Number.isInteger(timeout) || timeout < 1000 || timeout > maxTimeoutMs) {
    throw badRequest('timeout', `must be a whole number of milliseconds from 1000 to ${maxTimeoutMs} (24 hours)`);
  }
  return timeout;
}

function readResources(body: Record<string, unknown>): { vcpus: number; memory: number } | undefined {
  const resources = optionalObject(body, 'resources');
  if (!resources) return undefined;
  const vcpus = optionalNumber(resources, 'vcpus', 'resources.');
  if (vcpus === undefined) throw badRequest('resources.vcpus', 'is required');
  if (!(vcpuChoices as readonly number[]).includes(vcpus)) throw badRequest('resources.vcpus', `must be one of ${vcpuChoices.join(', ')}`);
  const memory = optionalNumber(resources, 'memory', 'resources.');
  if (memory !== undefined && memory !== vcpus * memoryPerVcpu) {
    throw badRequest('resources.memory', `is fixed at ${memoryPerVcpu} MB per vCPU (${vcpus * memoryPerVcpu} for ${vcpus})`);
  }
  return { vcpus, memory: vcpus * memoryPerVcpu };
}

function readKeepLast(body: Record<string, unknown>): KeepLastSnapshots | undefined {
  const keep = optionalObject(body, 'keepLastSnapshots');
  if (!keep) return undefined;
  const count = optionalNumber(keep, 'count', 'keepLastSnapshots.');
  if (count === undefined || !Number.isInteger(count) || count < 1 || count > 10) {
    throw badRequest('keepLastSnapshots.count', 'must be a whole number from 1 to 10');
  }
  return {
    count,
    ...(optionalNumber(keep, 'expiration', 'keepLastSnapshots.') === undefined ? {} : { expiration: keep.expiration as number }),
    ...(optionalBoolean(keep, 'deleteEvicted', 'keepLastSnapshots.') === undefined ? {} : { deleteEvicted: keep.deleteEvicted as boolean }),
  };
}

function readName(body: Record<string, unknown>): string | undefined {
  const name = optionalString(body, 'name');
  if (name !== undefined && !namePattern.test(name)) {
    throw badRequest('name', 'names are 1-63 letters, digits, "-" and "_", starting with a letter or digit');
  }
  return name;
}

/** Fields the emulator cannot honour: a 501 naming each, never a silent ignore. */
function refuseUnemulated(body: Record<string, unknown>, call: string): void {
  if (body.mounts !== undefined && body.mounts !== null && Object.keys(body.mounts as object).length > 0) {
    throw notEmulated(call, 'mounts: drives are not emulated');
  }
  if (typeof body.networkId === 'string') throw notEmulated(call, 'networkId: Secure Compute private networks are not emulated');
  const failover = body.failoverRegions;
  if (Array.isArray(failover) && failover.length > 0) throw notEmulated(call, 'failoverRegions: the emulator has one region');
}

interface SandboxConfig {
  name: string;
  persistent: boolean;
  image: ResolvedImage;
  vcpus: number;
  timeout: number;
  networkPolicy: RequestedPolicy;
  env: Record<string, string>;
  tags: Record<string, string>;
  ports: number[];
  snapshotExpiration: number | undefined;
  keepLastSnapshots: KeepLastSnapshots | undefined;
}

function newSandbox(state: VercelState, config: SandboxConfig): VercelSandbox {
  const existing = state.sandboxes.get(config.name);
  if (existing && !existing.deleted) throw new HttpError(409, 'conflict', `A sandbox named "${config.name}" already exists in the project`);
  const now = state.now();
  return {
    name: config.name,
    projectId: state.projectId,
    persistent: config.persistent,
    vcpus: config.vcpus,
    memory: config.vcpus * memoryPerVcpu,
    image: config.image,
    timeout: config.timeout,
    networkPolicy: config.networkPolicy,
    env: config.env,
    tags: config.tags,
    ports: config.ports,
    createdAt: now,
    updatedAt: now,
    statusUpdatedAt: now,
    currentSnapshotId: undefined,
    snapshotExpiration: config.snapshotExpiration,
    keepLastSnapshots: config.keepLastSnapshots,
    sessions: [],
    resuming: undefined,
    deleted: false,
  };
}

/** Starts the first session of a new sandbox (registered only once it runs) and applies `source`. */
async function launch(
  state: VercelState,
  sandbox: VercelSandbox,
  snapshot: VercelSnapshot | undefined,
  source: Record<string, unknown> | undefined,
) {
  state.sandboxes.set(sandbox.name, sandbox);
  try {
    const session = await state.startSession(sandbox, snapshot);
    if (source && source.type !== 'snapshot') await applySource(session, source);
  } catch (error) {
    const session = sandbox.sessions[sandbox.sessions.length - 1];
    if (session?.entry) await session.entry.local.terminate().catch(() => undefined);
    state.sandboxes.delete(sandbox.name);
    throw error;
  }
}

/** A git clone or a tarball's contents into `/vercel/sandbox`, from inside the sandbox (its network). */
async function applySource(session: VercelSession, source: Record<string, unknown>): Promise<void> {
  const url = optionalString(source, 'url', 'source.');
  if (!url) throw badRequest('source.url', 'is required');
  let argv: string[];
  if (source.type === 'git') {
    const depth = optionalNumber(source, 'depth', 'source.');
    const revision = optionalString(source, 'revision', 'source.');
    const username = optionalString(source, 'username', 'source.');
    const password = optionalString(source, 'password', 'source.');
    let cloneUrl = url;
    if (username !== undefined && password !== undefined) {
      const parsed = new URL(url);
      parsed.username = username;
      parsed.password = password;
      cloneUrl = parsed.href;
    }
    if (depth !== undefined && (!Number.isInteger(depth) || depth < 1))
      throw badRequest('source.depth', 'must be a whole number of at least 1');
    const script = [
      'set -e',
      'git clone -q ${2:+--depth "$2"} ${3:+--no-checkout} "$1" .',
      // A revision that is not a branch of a shallow clone is fetched by name first.
      'if [ -n "$3" ]; then git fetch -q ${2:+--depth "$2"} origin "$3" 2>/dev/null || true; git checkout -q "$3" 2>/dev/null || git checkout -q FETCH_HEAD; fi',
    ].join('\n');
    argv = ['/bin/sh', '-c', script, 'git-source', cloneUrl, depth === undefined ? '' : String(depth), revision ?? ''];
  } else if (source.type === 'tarball') {
    const script = 'set -e; t=$(mktemp); curl -fsSL "$1" -o "$t"; tar -xzf "$t" --no-same-owner; rm -f "$t"';
    argv = ['/bin/sh', '-c', script, 'tarball-source', url];
  } else {
    throw badRequest('source.type', `"${String(source.type)}" is not git, tarball or snapshot`);
  }
  const result = await session.entry!.local.run(argv, { cwd: defaultCwd });
  if (result.exitCode !== 0) {
    throw new HttpError(
      400,
      'source_failed',
      `the ${String(source.type)} source ${url} could not be fetched: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
    );
  }
}

async function create(state: VercelState, request: VercelRequest, response: ServerResponse, kind: 'image' | 'runtime') {
  const body = await request.json();
  const call = `sandbox creation (POST ${request.url.pathname})`;
  state.checkProject(optionalString(body, 'projectId'));
  refuseUnemulated(body, call);
  const source = optionalObject(body, 'source');
  let snapshot: VercelSnapshot | undefined;
  let image: ResolvedImage;
  if (source?.type === 'snapshot') {
    const id = optionalString(source, 'snapshotId', 'source.');
    if (!id) throw badRequest('source.snapshotId', 'is required');
    snapshot = state.usableSnapshot(id);
    image = state.sandboxes.get(snapshot.sandboxName)?.image ?? resolveImage(undefined, undefined);
  } else {
    image = resolveImage(optionalString(body, 'image'), kind === 'runtime' ? optionalString(body, 'runtime') : undefined);
  }
  const policyValue = body.networkPolicy;
  const networkPolicy = policyValue === undefined ? fromApiPolicy({ mode: 'allow-all' }) : readPolicy(policyValue, 'networkPolicy', call);
  planLocalNetwork(networkPolicy, call);
  const resources = readResources(body);
  const sandbox = newSandbox(state, {
    name: readName(body) ?? `sandbox-${randomToken(12).toLowerCase()}`,
    persistent: optionalBoolean(body, 'persistent') ?? true,
    image,
    vcpus: resources?.vcpus ?? 2,
    timeout: readTimeout(body) ?? defaultTimeoutMs,
    networkPolicy,
    env: optionalStringRecord(body, 'env') ?? {},
    tags: readTags(body) ?? {},
    ports: readPorts(body.ports) ?? [],
    snapshotExpiration: optionalNumber(body, 'snapshotExpiration'),
    keepLastSnapshots: readKeepLast(body),
  });
  await launch(state, sandbox, snapshot, source);
  sendJson(response, 200, state.sandboxAndSession(sandbox));
}

function sortAndPage<T>(
  items: T[],
  request: VercelRequest,
  key: (item: T) => number | string,
): { page: T[]; next: string | null; count: number } {
  const order = request.url.searchParams.get('sortOrder') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw badRequest('sortOrder', 'must be asc or desc');
  const sorted = [...items].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const compared = x < y ? -1 : x > y ? 1 : 0;
    return order === 'asc' ? compared : -compared;
  });
  const limitText = request.url.searchParams.get('limit');
  const limit = limitText === null ? 50 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badRequest('limit', 'must be a whole number from 1 to 100');
  const cursor = request.url.searchParams.get('cursor');
  let start = 0;
  if (cursor !== null) {
    start = Number(
      Buffer.from(cursor, 'base64url')
        .toString('utf8')
        .replace(/^offset:/, ''),
    );
    if (!Number.isInteger(start) || start < 0) throw badRequest('cursor', 'is not a cursor this emulator gave');
  }
  const page = sorted.slice(start, start + limit);
  const next = start + limit < sorted.length ? Buffer.from(`offset:${start + limit}`).toString('base64url') : null;
  return { page, next, count: page.length };
}

function listSandboxes(state: VercelState, request: VercelRequest): Record<string, unknown> {
  state.checkProject(request.url.searchParams.get('project'));
  const prefix = request.url.searchParams.get('namePrefix') ?? '';
  const filters = request.url.searchParams.getAll('tags').map((filter) => {
    const colon = filter.indexOf(':');
    if (colon <= 0) throw badRequest('tags', `"${filter}" is not key:value`);
    return [filter.slice(0, colon), filter.slice(colon + 1)] as const;
  });
  const sortBy = request.url.searchParams.get('sortBy') ?? 'createdAt';
  if (sortBy !== 'createdAt' && sortBy !== 'name' && sortBy !== 'statusUpdatedAt') {
    throw badRequest('sortBy', 'must be createdAt, name or statusUpdatedAt');
  }
  const matching = [...state.sandboxes.values()].filter(
    (sandbox) =>
      !sandbox.deleted &&
      sandbox.sessions.length > 0 &&
      sandbox.name.startsWith(prefix) &&
      filters.every(([key, value]) => sandbox.tags[key] === value),
  );
  const { page, next, count } = sortAndPage(matching, request, (sandbox) =>
    sortBy === 'name' ? sandbox.name : sortBy === 'statusUpdatedAt' ? sandbox.statusUpdatedAt : sandbox.createdAt,
  );
  return { sandboxes: page.map((sandbox) => state.sandboxBody(sandbox)), pagination: { count, next } };
}

async function update(state: VercelState, request: VercelRequest, response: ServerResponse) {
  const sandbox = state.sandbox(request.params.name!);
  state.checkProject(request.url.searchParams.get('projectId'));
  const body = await request.json();
  const call = `sandbox update (PATCH /v2/sandboxes/${sandbox.name})`;
  refuseUnemulated(body, call);
  const ports = readPorts(body.ports);
  const resources = readResources(body);
  const timeout = readTimeout(body);
  const tags = readTags(body);
  const keep = readKeepLast(body);
  const networkPolicy = body.networkPolicy === undefined ? undefined : readPolicy(body.networkPolicy, 'networkPolicy', call);
  if (networkPolicy) planLocalNetwork(networkPolicy, call);
  const persistent = optionalBoolean(body, 'persistent');
  const currentSnapshotId = optionalString(body, 'currentSnapshotId');
  if (currentSnapshotId !== undefined) state.usableSnapshot(currentSnapshotId);
  if (persistent !== undefined) sandbox.persistent = persistent;
  if (resources) {
    sandbox.vcpus = resources.vcpus;
    sandbox.memory = resources.memory;
  }
  if (timeout !== undefined) sandbox.timeout = timeout;
  if (tags) sandbox.tags = tags;
  if (keep) sandbox.keepLastSnapshots = keep;
  if (networkPolicy) sandbox.networkPolicy = networkPolicy;
  if (body.snapshotExpiration !== undefined) sandbox.snapshotExpiration = optionalNumber(body, 'snapshotExpiration');
  if (currentSnapshotId !== undefined) sandbox.currentSnapshotId = currentSnapshotId;
  const session = state.current(sandbox);
  if (ports) {
    sandbox.ports = ports;
    // The running session's routes follow at once: kept ports keep their subdomain.
    const kept = new Map(session.routes.map((route) => [route.port, route]));
    for (const route of session.routes) if (!ports.includes(route.port)) state.subdomains.delete(route.subdomain);
    session.routes = ports.map((port) => kept.get(port) ?? { port, subdomain: state.newSubdomain() });
    if (session.status === 'running')
      for (const route of session.routes) state.subdomains.set(route.subdomain, { session, port: route.port });
  }
  sandbox.updatedAt = state.now();
  sendJson(response, 200, { sandbox: state.sandboxBody(sandbox), routes: state.routesBody(session) });
}

async function remove(state: VercelState, request: VercelRequest, response: ServerResponse) {
  const sandbox = state.sandbox(request.params.name!);
  state.checkProject(request.url.searchParams.get('projectId'));
  const session = state.current(sandbox);
  // Deleted first, so that a call racing the stop cannot resume it; nothing is kept to resume.
  sandbox.deleted = true;
  sandbox.persistent = false;
  await state.stopSession(session, 'auto');
  if (sandbox.resuming) await (await sandbox.resuming.catch(() => undefined))?.entry?.local.terminate().catch(() => undefined);
  sandbox.updatedAt = state.now();
  if (request.url.searchParams.get('deleteOrphanSnapshots') === 'true') {
    const forked = new Set([...state.sandboxes.values()].filter((other) => !other.deleted).map((other) => other.currentSnapshotId));
    for (const snapshot of state.snapshots.values()) {
      if (snapshot.sandboxName === sandbox.name && !forked.has(snapshot.id)) void state.deleteSnapshot(snapshot);
    }
  }
  sendJson(response, 200, { sandbox: state.sandboxBody(sandbox) });
}

async function fork(state: VercelState, request: VercelRequest, response: ServerResponse) {
  const source = state.sandbox(request.params.name!);
  state.checkProject(request.url.searchParams.get('projectId'));
  const body = await request.json();
  const call = `sandbox fork (POST /v2/sandboxes/${source.name}/fork)`;
  refuseUnemulated(body, call);
  const snapshot = source.currentSnapshotId ? state.usableSnapshot(source.currentSnapshotId) : undefined;
  const image = body.image === undefined ? source.image : resolveImage(optionalString(body, 'image'), undefined);
  const networkPolicy = body.networkPolicy === undefined ? source.networkPolicy : readPolicy(body.networkPolicy, 'networkPolicy', call);
  planLocalNetwork(networkPolicy, call);
  const resources = readResources(body);
  const sandbox = newSandbox(state, {
    name: readName(body) ?? `${source.name.slice(0, 48)}-fork-${randomToken(6).toLowerCase()}`,
    persistent: optionalBoolean(body, 'persistent') ?? source.persistent,
    image,
    vcpus: resources?.vcpus ?? source.vcpus,
    timeout: readTimeout(body) ?? source.timeout,
    networkPolicy,
    env: optionalStringRecord(body, 'env') ?? { ...source.env },
    tags: readTags(body) ?? { ...source.tags },
    ports: readPorts(body.ports) ?? [...source.ports],
    snapshotExpiration: body.snapshotExpiration === undefined ? source.snapshotExpiration : optionalNumber(body, 'snapshotExpiration'),
    keepLastSnapshots: readKeepLast(body) ?? source.keepLastSnapshots,
  });
  // The fork starts from the source's current snapshot, when it has one, and keeps it as its own.
  sandbox.currentSnapshotId = snapshot?.id;
  await launch(state, sandbox, image === source.image ? snapshot : undefined, undefined);
  sendJson(response, 200, state.sandboxAndSession(sandbox));
}

function sessionAndRoutes(state: VercelState, session: VercelSession): Record<string, unknown> {
  return { session: state.sessionBody(session), routes: state.routesBody(session) };
}

export function sandboxRoutes(state: VercelState): VercelRoute[] {
  return [
    { method: 'POST', pattern: '/v3/sandboxes', handle: (request, response) => create(state, request, response, 'image') },
    { method: 'POST', pattern: '/v2/sandboxes', handle: (request, response) => create(state, request, response, 'runtime') },
    {
      method: 'GET',
      pattern: '/v2/sandboxes',
      async handle(request, response) {
        sendJson(response, 200, listSandboxes(state, request));
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/sessions',
      async handle(request, response) {
        state.checkProject(request.url.searchParams.get('project'));
        const name = request.url.searchParams.get('name');
        const sessions = name === null ? [...state.sessions.values()] : state.sandbox(name).sessions;
        const { page, next, count } = sortAndPage(sessions, request, (session) => session.requestedAt);
        sendJson(response, 200, { sessions: page.map((session) => state.sessionBody(session)), pagination: { count, next } });
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/sessions/:sessionId',
      async handle(request, response) {
        sendJson(response, 200, sessionAndRoutes(state, state.session(request.params.sessionId!)));
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/stop',
      async handle(request, response) {
        const session = state.session(request.params.sessionId!);
        const snapshot = await state.stopSession(session, 'auto');
        sendJson(response, 200, {
          session: state.sessionBody(session),
          sandbox: state.sandboxBody(session.sandbox),
          ...(snapshot ? { snapshot: state.snapshotBody(snapshot) } : {}),
        });
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/extend-timeout',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const duration = optionalNumber(await request.json(), 'duration');
        if (duration === undefined || !Number.isInteger(duration) || duration < 1) {
          throw badRequest('duration', 'must be a positive whole number of milliseconds');
        }
        if (session.timeout + duration > maxTimeoutMs) {
          throw badRequest('duration', `the session would run longer than ${maxTimeoutMs} ms (24 hours), the most a plan allows`);
        }
        session.timeout += duration;
        session.updatedAt = state.now();
        state.armTimer(session);
        sendJson(response, 200, { session: state.sessionBody(session) });
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/network-policy',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const call = `POST /v2/sandboxes/sessions/${session.id}/network-policy`;
        const policy = readPolicy(await request.json(), 'networkPolicy', call);
        const local = planLocalNetwork(policy, call);
        await session.entry.local.updateNetwork(local);
        session.networkPolicy = policy;
        session.localNetwork = local;
        session.updatedAt = state.now();
        sendJson(response, 200, { session: state.sessionBody(session) });
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/snapshot',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const expiration = optionalNumber(await request.json(), 'expiration');
        if (expiration !== undefined && (!Number.isInteger(expiration) || expiration < 0)) {
          throw badRequest('expiration', 'must be a whole number of milliseconds (0: never)');
        }
        const snapshot = await state.stopSession(session, 'manual', expiration);
        if (!snapshot) throw new HttpError(410, 'sandbox_stopped', `Session ${session.id} stopped before it was snapshotted`);
        sendJson(response, 200, { snapshot: state.snapshotBody(snapshot), session: state.sessionBody(session) });
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/interactive',
      async handle(request) {
        throw notEmulated(`POST ${request.url.pathname} (openInteractive)`, 'the interactive PTY session is not emulated');
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/:name',
      async handle(request, response) {
        const sandbox = state.sandbox(request.params.name!);
        state.checkProject(request.url.searchParams.get('projectId'));
        if (request.url.searchParams.get('resume') === 'true') {
          const { resumed } = await state.resume(sandbox);
          return sendJson(response, 200, state.sandboxAndSession(sandbox, resumed));
        }
        sendJson(response, 200, state.sandboxAndSession(sandbox, false));
      },
    },
    { method: 'PATCH', pattern: '/v2/sandboxes/:name', handle: (request, response) => update(state, request, response) },
    { method: 'DELETE', pattern: '/v2/sandboxes/:name', handle: (request, response) => remove(state, request, response) },
    { method: 'POST', pattern: '/v2/sandboxes/:name/fork', handle: (request, response) => fork(state, request, response) },
  ];
}
