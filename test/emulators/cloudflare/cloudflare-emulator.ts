/**
 * A local emulator of the bridge Worker of `@cloudflare/sandbox` (`@cloudflare/sandbox/bridge`):
 * one HTTP/1.1 server on 127.0.0.1 that answers as the bridge does (cloudflare-bridge.md §1 and
 * §3), version 0.12 (`/exec` with server-sent events, sessions) or 0.13 (`/processes`), with
 * every container a sandbox of the local bubblewrap provider, plus an edge proxy for tunnels.
 *
 * This file wires the parts and serves the lifecycle routes: `POST /v1/sandbox`, `DELETE
 * /v1/sandbox/:id`, `/health`, the pool, the OpenAPI document, bucket mounts (always 502: not
 * emulated) and the test hook. The other routes: cloudflare-exec.ts (0.12 exec, sessions,
 * running), cloudflare-processes.ts (0.13), cloudflare-files.ts (files, persist, hydrate),
 * cloudflare-tunnels.ts. Order of checks, as the bridge's middleware: on `/v1/sandbox/<id>…` the
 * id format (400) before the token (401), then the container of the id is allocated (started
 * when it has none) before the route's own checks.
 *
 * Test hook (not part of the bridge): `POST /__emulator/sandbox/:id/restart` with the bearer
 * token stops the container of `:id` and wipes its state, as a container stop does on
 * Cloudflare (idle `sleepAfter`, a crash, a platform update): the next call with that id gets a
 * fresh, empty one. Answers `200 {"restarted":true|false}` (false: no container was running).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import {
  BridgeError,
  createRouter,
  invalidRequest,
  jsonBody,
  sendEmpty,
  sendJson,
  type BridgeRequest,
  type BridgeRoute,
} from './cloudflare-http.js';
import { execRoutes, runningRoute } from './cloudflare-exec.js';
import { fileRoutes, type MissingFileAnswer } from './cloudflare-files.js';
import { openApiDocument, openApiHtml } from './cloudflare-openapi.js';
import { processRoutes } from './cloudflare-processes.js';
import { BridgeState, type Container } from './cloudflare-state.js';
import { startTunnelEdge, tunnelRoutes } from './cloudflare-tunnels.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { localProviderOnTestInternet, testInternetDomains } from '../shared/test-internet-provider.js';
import { bearerToken, isSandboxId, newSandboxId, type BridgeVersion } from './cloudflare-wire.js';

export interface CloudflareBridgeEmulatorOptions {
  /** Which bridge to be: 0.12.10 (`/exec`, sessions) or 0.13.0-next (`/processes`). @default '0.12' */
  version?: BridgeVersion;
  /**
   * The bridge's `SANDBOX_API_KEY`. `false`: no key set, auth off (as a bridge deployed without
   * one). @default a random token, reported as `token`
   */
  token?: string | false;
  /**
   * What `GET /file/<path>` does for a missing file or a directory: `'drop'` closes the
   * connection with no status line (what the real bridge does), `'404'` answers the documented
   * `404 {"code":"workspace_read_not_found"}`. @default 'drop'
   */
  missingFile?: MissingFileAnswer;
  /** Quick tunnels fail with `502 tunnel_error`, as with no `cloudflared` or no egress. @default false */
  tunnelFailure?: boolean;
  /**
   * 0.13: output bytes kept per process for replays, beyond which the oldest events go (never
   * before a connected reader had them: the process then waits). @default 67_108_864 (64 MiB)
   */
  processLogBytes?: number;
  /** Outbound network of the containers (Cloudflare's have it). @default 'allow' */
  network?: 'allow' | 'block';
  /**
   * Containers reach the test internet (test/egress-internet.ts, plus `hosts`) instead of the
   * local provider's real outbound network: their open internet is an allowlist of its names
   * through the local provider's egress proxy (`HTTP_PROXY` in every command's environment), as
   * a deployed container reaches a public URL. Not with `provider` or `network: 'block'`. @default false
   */
  testInternet?: boolean | TestInternetOptions;
  /**
   * Host directories mounted read-only into every container, by path in it: what the Worker's
   * container image holds beyond the base (its Dockerfile's `RUN npm install -g
   * @anthropic-ai/claude-code`), without building it. @default {}
   */
  containerMounts?: Record<string, string>;
  /** Where containers run. @default a new local provider */
  provider?: LocalSandboxProvider;
}

export interface CloudflareBridgeEmulator {
  /** The bridge's base URL (`http://127.0.0.1:<port>`; routes are under `/v1`). */
  readonly url: string;
  /** The bearer token it accepts; undefined when auth is off. */
  readonly token: string | undefined;
  readonly version: BridgeVersion;
  /** Call counts by `METHOD pattern`. */
  readonly calls: ReadonlyMap<string, number>;
  /** Stops the container of `sandboxId` and wipes its state; resolves to whether one ran. */
  restartContainer(sandboxId: string): Promise<boolean>;
  /** Terminates every container and stops the servers. */
  close(): Promise<void>;
}

/** Under this prefix the emulator's own test routes live; nothing of the bridge's. */
export const emulatorRoutePrefix = '/__emulator';

function lifecycleRoutes(state: BridgeState): BridgeRoute[] {
  const poolStats = () => ({
    warm: 0,
    assigned: state.assignedCount,
    total: state.assignedCount,
    config: { warmTarget: 0, refreshInterval: 10000, maxInstances: 0, scaleBatchSize: 5 },
    maxInstances: null,
  });
  const document = openApiDocument(state.version);
  const html = (response: ServerResponse) => {
    const text = openApiHtml(state.version);
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    response.end(text);
  };
  const mountFailure = (kind: 'mount' | 'unmount'): BridgeRoute => ({
    method: 'POST',
    pattern: `/v1/sandbox/:id/${kind}`,
    async handle(request) {
      await jsonBody(request);
      throw new BridgeError(502, `${kind} failed: the sandport emulator does not emulate bucket mounts`, `${kind}_error`);
    },
  });
  return [
    { method: 'GET', pattern: '/health', handle: async (_request, response) => sendJson(response, 200, { ok: true }) },
    { method: 'POST', pattern: '/v1/sandbox', handle: async (_request, response) => sendJson(response, 200, { id: newSandboxId() }) },
    {
      method: 'DELETE',
      pattern: '/v1/sandbox/:id',
      async handle(request, response) {
        // Lookup only: an id without a container allocates nothing.
        await state.stop(request.params.id!);
        sendEmpty(response, 204);
      },
    },
    mountFailure('mount'),
    mountFailure('unmount'),
    { method: 'GET', pattern: '/v1/pool/stats', handle: async (_request, response) => sendJson(response, 200, poolStats()) },
    { method: 'POST', pattern: '/v1/pool/prime', handle: async (_request, response) => sendJson(response, 200, { ok: true }) },
    { method: 'POST', pattern: '/v1/pool/shutdown-prewarmed', handle: async (_request, response) => sendJson(response, 200, { ok: true }) },
    { method: 'GET', pattern: '/v1/openapi.json', handle: async (_request, response) => sendJson(response, 200, document) },
    { method: 'GET', pattern: '/v1/openapi.html', handle: async (_request, response) => html(response) },
    { method: 'GET', pattern: '/v1/openapi', handle: async (_request, response) => html(response) },
    {
      method: 'POST',
      pattern: `${emulatorRoutePrefix}/sandbox/:id/restart`,
      async handle(request, response) {
        sendJson(response, 200, { restarted: await state.stop(request.params.id!) });
      },
    },
  ];
}

/** The bridge's checks that come before any route: id format, then the token of each route family. */
function checkRequest(state: BridgeState, request: BridgeRequest): void {
  const path = request.url.pathname;
  const unauthorized = () => new BridgeError(401, 'Unauthorized', 'unauthorized');
  const header = typeof request.headers.authorization === 'string' ? request.headers.authorization : undefined;
  if (path === '/v1/sandbox' || path.startsWith('/v1/sandbox/')) {
    const id = path.split('/')[3];
    if (id && !isSandboxId(id)) throw invalidRequest('Invalid sandbox ID format');
    if (state.token !== undefined && bearerToken(header, true) !== state.token) throw unauthorized();
  } else if (path.startsWith('/v1/pool/') || path.startsWith(`${emulatorRoutePrefix}/`)) {
    if (state.token !== undefined && bearerToken(header, false) !== state.token) throw unauthorized();
  } else if (path.startsWith('/v1/openapi')) {
    const query = request.url.searchParams.get('token') ?? '';
    if (state.token !== undefined && bearerToken(header, false) !== state.token && query !== state.token) throw unauthorized();
  }
}

export async function startCloudflareBridgeEmulator(options: CloudflareBridgeEmulatorOptions = {}): Promise<CloudflareBridgeEmulator> {
  const version = options.version ?? '0.12';
  if (version !== '0.12' && version !== '0.13') throw new Error(`version must be '0.12' or '0.13', not ${String(version)}`);
  const token = options.token === false ? undefined : (options.token ?? randomBytes(18).toString('base64url'));
  const internet =
    !options.provider && options.testInternet && options.network !== 'block'
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const network = internet ? { allowDomains: await testInternetDomains(options.testInternet) } : (options.network ?? 'allow');
  const volumes = options.containerMounts
    ? Object.fromEntries(Object.entries(options.containerMounts).map(([path, source]) => [path, { source, readOnly: true as const }]))
    : undefined;
  const state = new BridgeState({ provider, version, token, network, volumes });
  if (internet) state.closers.add(() => internet.close());
  const edge = await startTunnelEdge();
  state.closers.add(() => edge.close());
  const allocated = new WeakMap<BridgeRequest, Container>();
  const containerOf = (request: BridgeRequest) => {
    const container = allocated.get(request);
    if (!container) throw new Error(`no container was allocated for ${request.method} ${request.url.pathname}`);
    return container;
  };
  const commandRoutes =
    version === '0.12' ? [...execRoutes(containerOf)] : [...processRoutes(containerOf, options.processLogBytes), runningRoute(containerOf)];
  const routes: BridgeRoute[] = [
    ...lifecycleRoutes(state),
    ...commandRoutes,
    ...fileRoutes(state, containerOf, options.missingFile ?? 'drop'),
    ...tunnelRoutes(state, containerOf, edge, { failure: options.tunnelFailure ?? false }),
  ];
  const server = createServer(
    createRouter(routes, {
      label: `the Cloudflare bridge emulator (${version})`,
      calls: state.calls,
      before: (request) => checkRequest(state, request),
      async matched(request, route) {
        if (!route.pattern.startsWith('/v1/sandbox/:id/')) return;
        try {
          allocated.set(request, await state.container(request.params.id!));
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new BridgeError(502, `pool error: ${message}`, 'pool_error');
        }
      },
      fallback(request, response) {
        if (request.url.pathname.startsWith('/v1/') || request.url.pathname === '/v1') return false;
        // The template Worker's own fetch answers every other path.
        response.writeHead(200, { 'content-type': 'text/plain;charset=UTF-8', 'content-length': 2 });
        response.end('OK');
        return true;
      },
    }),
  );
  // Exec and log streams stay open for as long as their command runs.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    version,
    calls: state.calls,
    restartContainer: (sandboxId) => state.stop(sandboxId),
    close() {
      closing ??= (async () => {
        await state.containers.terminateAll();
        for (const closer of state.closers) await closer().catch(() => undefined);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
