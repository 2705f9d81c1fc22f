/**
 * The control plane's sandbox routes, as the `e2b` SDK (2.51) calls them:
 * - `POST /v2/sandboxes` (`Sandbox.create`): template, `timeout` (seconds, default 300, at most
 *   86400), metadata, envVars, `allow_internet_access` and `network`, `autoPause` (the timeout
 *   pauses instead of killing), `autoResume` (a tunnel request resumes a paused sandbox). Every
 *   sandbox is secured (an `envdAccessToken`), as E2B's v2 create answers.
 * - `POST /v2/sandboxes/:id/connect` (`Sandbox.connect`): resumes a paused sandbox (201) or
 *   extends a running one's timeout, never shortening it (200).
 * - `DELETE /sandboxes/:id` (`kill`), `GET /sandboxes/:id` (`getInfo`), `GET /v2/sandboxes`
 *   (`Sandbox.list`: state, metadata, template and startedAfter filters, order, limit, the
 *   `x-next-token` cursor), `POST /sandboxes/:id/timeout` (`setTimeout`), `POST
 *   /sandboxes/:id/pause` (409 when already paused), the deprecated `POST /sandboxes/:id/resume`
 *   and `POST /sandboxes/:id/refreshes`, `GET /sandboxes/:id/metrics` (`getMetrics`: a sample
 *   read inside the sandbox per call), `PUT /sandboxes/:id/network` (`updateNetwork`).
 * - snapshots: e2b-snapshots.ts; tunnels (`getHost`): e2b-tunnels.ts.
 *
 * A sandbox that ended (killed, or its timeout ran out) is a 404 everywhere, as on E2B.
 *
 * Egress rules map onto the local sandbox's network (e2b-network.ts): open, blocked, or an
 * allowlist (`denyOut: ['0.0.0.0/0']` with `allowOut` CIDRs, IPs and host names) enforced by the
 * local provider's egress proxy; a live update changes that allowlist, or blocks it.
 *
 * What the local sandbox cannot honour is a 400 naming it, never a silent downgrade: partial
 * `denyOut` (deny some, allow the rest), per-domain `rules`, `egressProxy`, `httpsPorts`, `iam`,
 * `mcp`, `volumeMounts`, filesystem-only pauses (`memory: false`, `autoPauseMemory: false`,
 * `onResume: 'reboot'` of a paused sandbox). Live network changes E2B makes but a local sandbox
 * cannot (opening a blocked or allowlisted sandbox to all traffic, restricting an open one,
 * allowing a list on one created with nothing allowed) are a 501 naming the call. Fork is not
 * served (501).
 */
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { localMaxTimeoutMs } from '../../../adapters/local/index.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  type CreateSandboxOptions,
} from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { HttpError, sendJson, type E2bRequest, type E2bRoute } from './e2b-http.js';
import { planEgress, planNetworkChange, unsupported, type LocalNetwork } from './e2b-network.js';
import { snapshotRoutes } from './e2b-snapshots.js';
import type { E2bSandbox, E2bState } from './e2b-state.js';
import { envdDefaultsKey, type EnvdDefaults } from './e2b-process-table.js';
import { resolveTemplate, type ResolvedTemplate } from './e2b-templates.js';
import type { TunnelProxy, TunnelRouting } from './e2b-tunnels.js';

/** E2B's default sandbox timeout (v2 create and connect), in seconds. */
export const defaultTimeoutSeconds = 300;
/** E2B's longest timeout (Pro tier), in seconds. */
export const maxTimeoutSeconds = 24 * 60 * 60;
/** The team every sandbox belongs to; E2B's deprecated `clientID`. */
export const emulatorTeam = 'emulator';

/** What the control plane keeps per sandbox, in `data.extra` under `control`. */
export interface SandboxControl {
  readonly template: ResolvedTemplate;
  readonly startedAt: number;
  /** Milliseconds since the epoch: when the timeout runs out. */
  endAt: number;
  /** The create's timeout, seconds: what an auto-resume grants. */
  readonly timeoutSeconds: number;
  readonly autoPause: boolean;
  readonly autoResume: boolean;
  allowInternetAccess: boolean | null;
  network: NetworkInfo | undefined;
  /** What the local sandbox runs with now (changed by live updates). */
  localNetwork: LocalNetwork;
  readonly trafficAccessToken: string | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Pause and resume in flight, one at a time. */
  transition: Promise<void>;
  readonly metrics: MetricSample[];
  lastCpu: { ticks: number; at: number } | undefined;
}

interface NetworkInfo {
  allowOut?: string[];
  denyOut?: string[];
  allowPublicTraffic?: boolean;
  maskRequestHost?: string;
}

interface MetricSample {
  timestamp: string;
  timestampUnix: number;
  cpuCount: number;
  cpuUsedPct: number;
  memUsed: number;
  memTotal: number;
  memCache: number;
  diskUsed: number;
  diskTotal: number;
}

export function controlOf(found: E2bSandbox): SandboxControl {
  const control = found.data.extra.get('control') as SandboxControl | undefined;
  if (!control) throw new HttpError(500, `sandbox ${found.id} has no control-plane record`);
  return control;
}

/** A sandbox that has not ended, or E2B's 404. */
export function liveSandbox(state: E2bState, id: string): E2bSandbox {
  const found = state.sandboxes.get(id);
  if (!found || found.end) throw new HttpError(404, `sandbox "${id}" not found`);
  return found;
}

// ---- request bodies ----------------------------------------------------------------------

const stringMap = z.record(z.string(), z.string());
const timeoutSchema = z
  .number()
  .int()
  .min(0)
  .max(maxTimeoutSeconds, { message: `must be at most ${maxTimeoutSeconds} seconds (24 hours)` });
const rulesSchema = z.record(z.string(), z.array(z.unknown()));

const networkSchema = z
  .object({
    allowOut: z.array(z.string()).optional(),
    denyOut: z.array(z.string()).optional(),
    allowPublicTraffic: z.boolean().optional(),
    maskRequestHost: z.string().optional(),
    httpsPorts: z.array(z.number().int()).optional(),
    egressProxy: z.unknown().optional(),
    rules: rulesSchema.optional(),
  })
  .passthrough();

const createSchema = z
  .object({
    templateID: z.string().min(1),
    timeout: timeoutSchema.optional(),
    metadata: stringMap.nullish(),
    envVars: stringMap.nullish(),
    allow_internet_access: z.boolean().nullish(),
    network: networkSchema.nullish(),
    secure: z.boolean().optional(),
    autoPause: z.boolean().optional(),
    autoPauseMemory: z.boolean().optional(),
    autoResume: z.object({ enabled: z.boolean() }).nullish(),
    iam: z.unknown().optional(),
    mcp: z.unknown().optional(),
    volumeMounts: z.array(z.unknown()).optional(),
  })
  .passthrough();

const connectSchema = z.object({ timeout: timeoutSchema.optional(), memory: z.boolean().optional() }).passthrough();
const timeoutBodySchema = z.object({ timeout: timeoutSchema }).passthrough();
const pauseSchema = z.object({ memory: z.boolean().optional() }).passthrough();
const refreshSchema = z.object({ duration: timeoutSchema.optional() }).passthrough();
const networkUpdateSchema = z
  .object({
    allow_internet_access: z.boolean().optional(),
    allowOut: z.array(z.string()).optional(),
    denyOut: z.array(z.string()).optional(),
    egressProxy: z.unknown().optional(),
    rules: rulesSchema.optional(),
  })
  .passthrough();

/** The body parsed with `schema`, or E2B's 400 naming the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new HttpError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`);
}

// ---- network (e2b-network.ts) ---------------------------------------------------------------

interface NetworkPlan {
  local: LocalNetwork;
  info: NetworkInfo | undefined;
}

function planNetwork(body: z.infer<typeof createSchema>): NetworkPlan {
  const network = body.network ?? undefined;
  const local = planEgress(body.allow_internet_access, network, 'network.');
  if (network?.httpsPorts && network.httpsPorts.length > 0) {
    throw unsupported('network.httpsPorts', 'the tunnel proxy reaches sandbox ports over plain HTTP only');
  }
  if (!network) return { local, info: undefined };
  const info: NetworkInfo = {
    ...(network.allowOut && { allowOut: network.allowOut }),
    ...(network.denyOut && { denyOut: network.denyOut }),
    ...(network.allowPublicTraffic !== undefined && { allowPublicTraffic: network.allowPublicTraffic }),
    ...(network.maskRequestHost !== undefined && { maskRequestHost: network.maskRequestHost }),
  };
  return { local, info };
}

// ---- answers -------------------------------------------------------------------------------

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function stateOf(found: E2bSandbox): 'running' | 'paused' {
  return found.data.paused ? 'paused' : 'running';
}

/** The `Sandbox` object of create and connect answers. */
function sandboxJson(state: E2bState, found: E2bSandbox) {
  const control = controlOf(found);
  return {
    sandboxID: found.id,
    templateID: control.template.templateID,
    ...(control.template.alias !== undefined && { alias: control.template.alias }),
    clientID: emulatorTeam,
    envdVersion: control.template.envdVersion,
    envdAccessToken: found.data.envdAccessToken,
    trafficAccessToken: control.trafficAccessToken ?? null,
    domain: state.domain,
  };
}

function listedJson(found: E2bSandbox) {
  const control = controlOf(found);
  return {
    sandboxID: found.id,
    templateID: control.template.templateID,
    ...(control.template.alias !== undefined && { alias: control.template.alias }),
    clientID: emulatorTeam,
    cpuCount: control.template.cpuCount,
    memoryMB: control.template.memoryMB,
    diskSizeMB: control.template.diskSizeMB,
    envdVersion: control.template.envdVersion,
    metadata: { ...found.tags },
    startedAt: iso(control.startedAt),
    endAt: iso(control.endAt),
    state: stateOf(found),
    volumeMounts: [],
  };
}

function detailJson(state: E2bState, found: E2bSandbox) {
  const control = controlOf(found);
  return {
    ...listedJson(found),
    allowInternetAccess: control.allowInternetAccess,
    domain: state.domain,
    envdAccessToken: found.data.envdAccessToken,
    lifecycle: { onTimeout: control.autoPause ? 'pause' : 'kill', autoResume: control.autoResume },
    ...(control.network && { network: control.network }),
  };
}

function noContent(response: ServerResponse): void {
  response.writeHead(204).end();
}

// ---- lifecycle -----------------------------------------------------------------------------

/** Arms the timer that kills (or, with autoPause, pauses) the sandbox at `endAt`. */
function schedule(found: E2bSandbox): void {
  const control = controlOf(found);
  clearTimeout(control.timer);
  control.timer = undefined;
  if (found.end || found.data.paused) return;
  control.timer = setTimeout(
    () => {
      control.timer = undefined;
      if (control.autoPause) void pauseSandbox(found).catch(() => undefined);
      else void found.local.terminate().catch(() => undefined);
    },
    Math.max(0, control.endAt - Date.now()),
  );
  control.timer.unref();
}

function setEnd(found: E2bSandbox, timeoutSeconds: number): void {
  controlOf(found).endAt = Date.now() + timeoutSeconds * 1000;
  schedule(found);
  // The local sandbox's own lifetime is only a backstop here: the timer above is E2B's.
  void found.local.extendTimeout?.(localMaxTimeoutMs).catch(() => undefined);
}

/** One pause or resume at a time per sandbox. */
function serialized(found: E2bSandbox, step: () => Promise<void>): Promise<void> {
  const control = controlOf(found);
  const next = control.transition.then(step, step);
  control.transition = next.catch(() => undefined);
  return next;
}

/** Pauses: false when it was paused already. Throws 501 while the local provider cannot pause. */
export function pauseSandbox(found: E2bSandbox): Promise<boolean> {
  let paused = false;
  return serialized(found, async () => {
    if (found.end || found.data.paused) return;
    if (!found.local.pause) {
      throw new HttpError(501, 'The E2B emulator cannot pause sandboxes: its local provider has no pause() (capabilities.pause is false)');
    }
    await found.local.pause();
    found.data.paused = true;
    paused = true;
    const control = controlOf(found);
    clearTimeout(control.timer);
    control.timer = undefined;
  }).then(() => paused);
}

/** Resumes a paused sandbox with a fresh timeout; false when it was running. */
export function resumeSandbox(found: E2bSandbox, timeoutSeconds: number): Promise<boolean> {
  let resumed = false;
  return serialized(found, async () => {
    if (found.end || !found.data.paused) return;
    if (!found.local.resume) throw new HttpError(501, 'The E2B emulator cannot resume sandboxes: its local provider has no resume()');
    await found.local.resume();
    found.data.paused = false;
    resumed = true;
    setEnd(found, timeoutSeconds);
  }).then(() => resumed);
}

/** Routes tunnel traffic by the control plane's view of each sandbox. */
export function tunnelRouting(): TunnelRouting {
  return {
    unavailable: (found) =>
      found.end ? `The sandbox ${found.id} was not found` : found.data.paused ? `The sandbox ${found.id} is paused` : undefined,
    async autoResume(found) {
      const control = controlOf(found);
      if (!control.autoResume || !found.data.paused) return false;
      return resumeSandbox(found, control.timeoutSeconds);
    },
    policy: (found) => ({
      trafficAccessToken: controlOf(found).trafficAccessToken,
      maskRequestHost: controlOf(found).network?.maskRequestHost,
    }),
  };
}

// ---- create ----------------------------------------------------------------------------------

/** The local provider's refusal of a create as E2B's status. */
function asHttpError(error: unknown): unknown {
  if (error instanceof HttpError) return error;
  if (SandboxInvalidArgumentError.isInstance(error)) return new HttpError(400, error.message);
  if (SandboxError.isInstance(error)) return new HttpError(500, `the local sandbox could not be created: ${error.message}`);
  return error;
}

/** The local sandbox's refusal of a live network update as E2B's status. */
function asUpdateError(error: unknown, sandboxId: string): unknown {
  if (SandboxInvalidArgumentError.isInstance(error)) return new HttpError(400, error.message);
  if (SandboxNotFoundError.isInstance(error)) return new HttpError(404, `sandbox "${sandboxId}" not found`);
  if (SandboxCapabilityUnsupportedError.isInstance(error)) {
    return new HttpError(501, `PUT /sandboxes/${sandboxId}/network (updateNetwork) is not emulated here: ${error.message}`);
  }
  if (SandboxError.isInstance(error)) return new HttpError(500, `the local sandbox's network could not be updated: ${error.message}`);
  return error;
}

async function createSandbox(state: E2bState, body: z.infer<typeof createSchema>): Promise<E2bSandbox> {
  if (body.mcp != null) throw unsupported('mcp', 'the MCP gateway is not emulated');
  if (body.iam != null) throw unsupported('iam', 'workload identity tokens are not emulated');
  if (body.volumeMounts && body.volumeMounts.length > 0) throw unsupported('volumeMounts', 'E2B volumes are not emulated');
  if (body.autoPause && body.autoPauseMemory === false) {
    throw unsupported('autoPauseMemory', 'filesystem-only pauses (keepMemory: false) cannot be honoured: a local pause keeps memory');
  }
  if (body.autoResume?.enabled && !body.autoPause) throw new HttpError(400, 'autoResume: can only be enabled when autoPause is');
  const network = planNetwork(body);
  const template = resolveTemplate(state, body.templateID);
  const timeoutSeconds = body.timeout ?? defaultTimeoutSeconds;
  const local: CreateSandboxOptions = {
    image: template.localImage,
    env: { ...template.envs, ...body.envVars },
    network: network.local,
    cpu: template.cpuCount,
    memoryMiB: template.memoryMB,
    timeoutMs: localMaxTimeoutMs,
    ...(template.workdir !== undefined && { workdir: template.workdir }),
  };
  const trafficAccessToken = network.info?.allowPublicTraffic === false ? randomToken(32) : undefined;
  let found: E2bSandbox;
  try {
    found = await state.sandboxes.create(local, {
      tags: { ...body.metadata },
      data: () => {
        const startedAt = Date.now();
        const control: SandboxControl = {
          template,
          startedAt,
          endAt: startedAt + timeoutSeconds * 1000,
          timeoutSeconds,
          autoPause: body.autoPause ?? false,
          autoResume: body.autoResume?.enabled ?? false,
          allowInternetAccess: body.allow_internet_access ?? null,
          network: network.info,
          localNetwork: network.local,
          trafficAccessToken,
          timer: undefined,
          transition: Promise.resolve(),
          metrics: [],
          lastCpu: undefined,
        };
        return {
          templateId: template.templateID,
          envdAccessToken: randomToken(32),
          paused: false,
          extra: new Map<string, unknown>([
            ['control', control],
            // The template's last USER and WORKDIR are what envd runs commands as and in by default.
            [envdDefaultsKey, { user: template.user, workdir: template.workdir } satisfies EnvdDefaults],
          ]),
        };
      },
    });
  } catch (error) {
    throw asHttpError(error);
  }
  schedule(found);
  void found.ended.then(() => clearTimeout(controlOf(found).timer));
  return found;
}

// ---- list ------------------------------------------------------------------------------------

const states = ['running', 'paused'] as const;

/** `metadata` as the SDK sends it: `k=v&k2=v2` with each key and value URI-encoded once more. */
function parseMetadataQuery(query: string | null): Record<string, string> {
  if (!query) return {};
  const wanted: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(query)) {
    try {
      wanted[decodeURIComponent(key)] = decodeURIComponent(value);
    } catch {
      throw new HttpError(400, `metadata: "${key}=${value}" is not URI-encoded`);
    }
  }
  return wanted;
}

function parseStates(request: E2bRequest): Set<string> {
  const given = request.url.searchParams
    .getAll('state')
    .flatMap((value) => value.split(','))
    .filter(Boolean);
  for (const value of given)
    if (!(states as readonly string[]).includes(value)) throw new HttpError(400, `state: "${value}" is not one of running, paused`);
  return new Set(given.length > 0 ? given : states);
}

/** `limit`: 1 to 100, default 100 (E2B's pagination limit). */
export function parseLimit(request: E2bRequest): number {
  const raw = request.url.searchParams.get('limit');
  if (raw === null || raw === '') return 100;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new HttpError(400, `limit: must be an integer from 1 to 100, got "${raw}"`);
  return limit;
}

/** One page of `items` after the cursor `nextToken` (the key of the last item of the previous page). */
export function paginate<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  request: E2bRequest,
): { page: T[]; nextToken: string | undefined } {
  const limit = parseLimit(request);
  const token = request.url.searchParams.get('nextToken');
  let start = 0;
  if (token) {
    const key = Buffer.from(token, 'base64url').toString('utf8');
    const at = items.findIndex((item) => keyOf(item) === key);
    if (at < 0) throw new HttpError(400, `nextToken: "${token}" is not a cursor of this list`);
    start = at + 1;
  }
  const page = items.slice(start, start + limit);
  const more = start + limit < items.length;
  return { page, nextToken: more ? Buffer.from(keyOf(page[page.length - 1]!), 'utf8').toString('base64url') : undefined };
}

function listSandboxes(state: E2bState, request: E2bRequest, response: ServerResponse): void {
  const query = request.url.searchParams;
  const wantedStates = parseStates(request);
  const metadata = parseMetadataQuery(query.get('metadata'));
  const order = query.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw new HttpError(400, `order: "${order}" is not one of asc, desc`);
  const startedAfterRaw = query.get('startedAfter');
  const startedAfter = startedAfterRaw ? Date.parse(startedAfterRaw) : undefined;
  if (startedAfter !== undefined && Number.isNaN(startedAfter))
    throw new HttpError(400, `startedAfter: "${startedAfterRaw}" is not a date-time`);
  const template = query.get('template');
  const matching = state.sandboxes
    .list({ tags: metadata })
    .filter((found) => found.data.extra.has('control'))
    .filter((found) => {
      const control = controlOf(found);
      if (startedAfter !== undefined && control.startedAt < startedAfter) return false;
      if (template && control.template.templateID !== template && control.template.alias !== template) return false;
      return true;
    });
  const wanted = matching.filter((found) => wantedStates.has(stateOf(found)));
  // The registry lists newest first; E2B's default order is the same.
  if (order === 'asc') wanted.reverse();
  const { page, nextToken } = paginate(wanted, (found) => found.id, request);
  const headers: Record<string, string> = {};
  if (nextToken) headers['x-next-token'] = nextToken;
  if (wantedStates.has('running')) headers['x-total-running'] = String(matching.filter((found) => !found.data.paused).length);
  sendJson(response, 200, page.map(listedJson), headers);
}

// ---- metrics ---------------------------------------------------------------------------------

/** Read inside the sandbox: its own /proc (its pid namespace), the page size, clock ticks, its root's disk. */
const metricsScript = [
  'cat /proc/[0-9]*/stat 2>/dev/null',
  'echo "@statm"; cat /proc/[0-9]*/statm 2>/dev/null',
  'echo "@conf"; getconf PAGESIZE 2>/dev/null || echo 4096; getconf CLK_TCK 2>/dev/null || echo 100',
  'echo "@df"; df -kP / 2>/dev/null | tail -n 1',
].join('\n');

async function sample(found: E2bSandbox): Promise<MetricSample> {
  const control = controlOf(found);
  const result = await found.local.run(['sh', '-c', metricsScript], { cwd: '/', timeoutMs: 10_000 });
  const [statPart = '', rest = ''] = result.stdout.split('@statm\n');
  const [statmPart = '', rest2 = ''] = rest.split('@conf\n');
  const [confPart = '', dfPart = ''] = rest2.split('@df\n');
  let ticks = 0;
  for (const line of statPart.split('\n')) {
    const fields = line.slice(line.lastIndexOf(')') + 2).split(' ');
    // After the command: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    for (const index of [11, 12, 13, 14]) ticks += Number(fields[index]) || 0;
  }
  const [pageSize = 4096, clockTicks = 100] = confPart.split('\n').map(Number);
  let residentPages = 0;
  for (const line of statmPart.split('\n')) residentPages += Number(line.split(' ')[1]) || 0;
  const df = dfPart.trim().split(/\s+/);
  const now = Date.now();
  const previous = control.lastCpu ?? { ticks: 0, at: control.startedAt };
  control.lastCpu = { ticks, at: now };
  const cpuSeconds = Math.max(0, ticks - previous.ticks) / (clockTicks || 100);
  const wallSeconds = Math.max(0.001, (now - previous.at) / 1000);
  const cpuUsedPct = Math.min(100, (cpuSeconds / wallSeconds / control.template.cpuCount) * 100);
  return {
    timestamp: iso(now),
    timestampUnix: Math.floor(now / 1000),
    cpuCount: control.template.cpuCount,
    cpuUsedPct: Math.round(cpuUsedPct * 100) / 100,
    memUsed: residentPages * (pageSize || 4096),
    memTotal: control.template.memoryMB * 1024 * 1024,
    memCache: 0,
    diskUsed: (Number(df[2]) || 0) * 1024,
    diskTotal: (Number(df[1]) || 0) * 1024,
  };
}

async function metrics(found: E2bSandbox, request: E2bRequest): Promise<MetricSample[]> {
  const control = controlOf(found);
  const bound = (name: string): number | undefined => {
    const raw = request.url.searchParams.get(name);
    if (raw === null || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new HttpError(400, `${name}: "${raw}" is not a Unix time in seconds`);
    return value;
  };
  const start = bound('start');
  const end = bound('end');
  // A paused sandbox's processes are frozen: an exec there would wait for the resume.
  if (!found.data.paused) {
    control.metrics.push(await sample(found));
    if (control.metrics.length > 1000) control.metrics.shift();
  }
  return control.metrics.filter(
    (entry) => (start === undefined || entry.timestampUnix >= start) && (end === undefined || entry.timestampUnix <= end),
  );
}

// ---- routes ----------------------------------------------------------------------------------

export function controlPlaneRoutes(state: E2bState, tunnels?: TunnelProxy): E2bRoute[] {
  tunnels?.serve(state, tunnelRouting());
  state.closers.add(async () => {
    for (const found of state.sandboxes.all()) clearTimeout((found.data.extra.get('control') as SandboxControl | undefined)?.timer);
  });
  const id = (request: E2bRequest) => request.params.sandboxID!;
  return [
    {
      method: 'POST',
      pattern: '/v2/sandboxes',
      async handle(request, response) {
        const found = await createSandbox(state, parseBody(createSchema, await request.json()));
        sendJson(response, 201, sandboxJson(state, found));
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes',
      async handle(request, response) {
        listSandboxes(state, request, response);
      },
    },
    {
      method: 'GET',
      pattern: '/sandboxes/:sandboxID',
      async handle(request, response) {
        sendJson(response, 200, detailJson(state, liveSandbox(state, id(request))));
      },
    },
    {
      method: 'DELETE',
      pattern: '/sandboxes/:sandboxID',
      async handle(request, response) {
        const found = liveSandbox(state, id(request));
        clearTimeout(controlOf(found).timer);
        await found.local.terminate();
        await found.ended;
        noContent(response);
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/:sandboxID/connect',
      async handle(request, response) {
        const body = parseBody(connectSchema, await request.json());
        const found = liveSandbox(state, id(request));
        const timeoutSeconds = body.timeout ?? defaultTimeoutSeconds;
        if (found.data.paused) {
          if (body.memory === false) throw unsupported('memory', "resuming from disk state only (onResume: 'reboot') is not enabled");
          const resumed = await resumeSandbox(found, timeoutSeconds);
          return sendJson(response, resumed ? 201 : 200, sandboxJson(state, found));
        }
        // A running sandbox's timeout is only ever extended by connect.
        if (Date.now() + timeoutSeconds * 1000 > controlOf(found).endAt) setEnd(found, timeoutSeconds);
        sendJson(response, 200, sandboxJson(state, found));
      },
    },
    {
      method: 'POST',
      pattern: '/sandboxes/:sandboxID/resume',
      async handle(request, response) {
        const body = parseBody(connectSchema, await request.json());
        const found = liveSandbox(state, id(request));
        if (!found.data.paused) throw new HttpError(409, `sandbox "${found.id}" is already running`);
        if (body.memory === false) throw unsupported('memory', 'resuming from disk state only is not enabled');
        await resumeSandbox(found, body.timeout ?? 15);
        sendJson(response, 201, sandboxJson(state, found));
      },
    },
    {
      method: 'POST',
      pattern: '/sandboxes/:sandboxID/pause',
      async handle(request, response) {
        const body = parseBody(pauseSchema, await request.json());
        const found = liveSandbox(state, id(request));
        if (body.memory === false)
          throw unsupported('memory', 'filesystem-only pauses (keepMemory: false) cannot be honoured: a local pause keeps memory');
        if (!(await pauseSandbox(found))) throw new HttpError(409, `sandbox "${found.id}" is already paused`);
        noContent(response);
      },
    },
    {
      method: 'POST',
      pattern: '/sandboxes/:sandboxID/timeout',
      async handle(request, response) {
        const body = parseBody(timeoutBodySchema, await request.json());
        const found = liveSandbox(state, id(request));
        // A paused sandbox does not run out; connect gives it a timeout again.
        if (found.data.paused) controlOf(found).endAt = Date.now() + body.timeout * 1000;
        else setEnd(found, body.timeout);
        noContent(response);
      },
    },
    {
      method: 'POST',
      pattern: '/sandboxes/:sandboxID/refreshes',
      async handle(request, response) {
        const body = parseBody(refreshSchema, await request.json());
        const found = liveSandbox(state, id(request));
        const seconds = body.duration ?? defaultTimeoutSeconds;
        if (!found.data.paused && Date.now() + seconds * 1000 > controlOf(found).endAt) setEnd(found, seconds);
        noContent(response);
      },
    },
    {
      method: 'GET',
      pattern: '/sandboxes/:sandboxID/metrics',
      async handle(request, response) {
        sendJson(response, 200, await metrics(liveSandbox(state, id(request)), request));
      },
    },
    {
      method: 'PUT',
      pattern: '/sandboxes/:sandboxID/network',
      async handle(request, response) {
        const body = parseBody(networkUpdateSchema, await request.json());
        const found = liveSandbox(state, id(request));
        const control = controlOf(found);
        const next = planEgress(body.allow_internet_access, body, '');
        const change = planNetworkChange(control.localNetwork, next, found.id);
        if (change.kind === 'update') {
          await found.local.updateNetwork(change.policy).catch((error: unknown) => Promise.reject(asUpdateError(error, found.id)));
          control.localNetwork = change.state;
        }
        control.allowInternetAccess = body.allow_internet_access ?? null;
        const { allowPublicTraffic, maskRequestHost } = control.network ?? {};
        control.network = {
          ...(body.allowOut && { allowOut: body.allowOut }),
          ...(body.denyOut && { denyOut: body.denyOut }),
          ...(allowPublicTraffic !== undefined && { allowPublicTraffic }),
          ...(maskRequestHost !== undefined && { maskRequestHost }),
        };
        noContent(response);
      },
    },
    ...snapshotRoutes(state),
  ];
}
