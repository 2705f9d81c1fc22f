/**
 * A local Vercel Sandbox emulator: a plain HTTP/1.1 server on 127.0.0.1 that the real
 * `@vercel/sandbox` SDK reaches through a URL-rewriting `fetch` (vercel-fetch.ts; the SDK's base
 * URL is fixed), running every session in the local bubblewrap provider on the rootfs of
 * scripts/build-vercel-images.sh, plus an edge proxy for tunnels (vercel-edge.ts). Any route it
 * does not serve is a 501 naming the call, never a hang.
 *
 * How to use it with the SDK:
 *   const emulator = await startVercelEmulator();
 *   const sandbox = await Sandbox.create({ token: emulator.token, teamId: emulator.teamId,
 *     projectId: emulator.projectId, fetch: emulator.fetch });
 * Tunnels: `sandbox.domain(port)` is `https://<subdomain>.vercel.run`; the same URL with
 * `toEdgeUrl(url, emulator.tunnelBaseUrl)` (or through `emulator.fetch`) reaches the port.
 *
 * This file wires the parts: the state (vercel-state.ts), one handler group per concern
 * (vercel-sandboxes.ts, vercel-commands.ts, vercel-files.ts, vercel-snapshots.ts) and the HTTP
 * plumbing (vercel-http.ts).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { localProviderOnTestInternet } from '../shared/test-internet-provider.js';
import { commandRoutes } from './vercel-commands.js';
import { startEdge } from './vercel-edge.js';
import { createVercelFetch } from './vercel-fetch.js';
import { fileRoutes } from './vercel-files.js';
import { createRouter } from './vercel-http.js';
import { sandboxRoutes } from './vercel-sandboxes.js';
import { snapshotRoutes } from './vercel-snapshots.js';
import { VercelState } from './vercel-state.js';

/** The credentials the emulator accepts unless told otherwise (an opaque, non-JWT token). */
export const emulatorCredentials = {
  token: 'vercel_emulator_token',
  teamId: 'team_emulator',
  projectId: 'prj_emulator',
} as const;

export interface VercelEmulatorOptions {
  /** Where sessions run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** The bearer token it accepts. @default `emulatorCredentials.token` */
  token?: string;
  /** @default `emulatorCredentials.teamId` */
  teamId?: string;
  /** @default `emulatorCredentials.projectId` */
  projectId?: string;
  /**
   * Without `provider`: run sandboxes in a local provider whose egress goes to the test internet
   * (../shared/test-internet-provider.ts), so that allowlists reach `allowed.test`; an object adds
   * hosts of the test's own. @default false
   */
  testInternet?: boolean | TestInternetOptions;
}

export interface VercelEmulator {
  /** The emulator's API base (`http://127.0.0.1:PORT/api`), what `https://vercel.com/api` maps to. */
  readonly baseUrl: string;
  /** Same as `baseUrl` (what `spawnEmulator` reports). */
  readonly url: string;
  /** The fetch to hand to the SDK. */
  readonly fetch: typeof fetch;
  /** `http://vercel.localhost:<edgePort>`: the tunnel base (see vercel-edge.ts). */
  readonly tunnelBaseUrl: string;
  readonly token: string;
  readonly teamId: string;
  readonly projectId: string;
  /** Call counts by `METHOD pattern`, for tests and the benchmark. */
  readonly calls: ReadonlyMap<string, number>;
  /** Stops every session, removes its snapshots and stops both servers. */
  close(): Promise<void>;
}

export async function startVercelEmulator(options: VercelEmulatorOptions = {}): Promise<VercelEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const edge = await startEdge();
  const state = new VercelState({
    provider,
    token: options.token ?? emulatorCredentials.token,
    teamId: options.teamId ?? emulatorCredentials.teamId,
    projectId: options.projectId ?? emulatorCredentials.projectId,
    tunnelBaseUrl: edge.tunnelBaseUrl,
  });
  edge.serve(state);
  // Snapshots and sessions before `/v2/sandboxes/:name`, which would match them too.
  const routes = [...snapshotRoutes(state), ...commandRoutes(state), ...fileRoutes(state), ...sandboxRoutes(state)].map((route) => ({
    ...route,
    pattern: `/api${route.pattern}`,
  }));
  const server = createServer(createRouter(routes, { calls: state.calls, check: (request) => state.checkAuth(request) }));
  // Log streams stay open for as long as the command runs.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
  let closing: Promise<void> | undefined;
  return {
    baseUrl,
    url: baseUrl,
    fetch: createVercelFetch({ baseUrl, tunnelBaseUrl: edge.tunnelBaseUrl }),
    tunnelBaseUrl: edge.tunnelBaseUrl,
    token: state.token,
    teamId: state.teamId,
    projectId: state.projectId,
    calls: state.calls,
    close() {
      closing ??= (async () => {
        await state.close();
        await edge.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await internet?.close();
      })();
      return closing;
    },
  };
}
