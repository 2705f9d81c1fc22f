/**
 * A local Fly Machines emulator: Fly's Machines REST API (`/v1/…`, bearer token) on 127.0.0.1,
 * running every machine in the local bubblewrap provider, and the public edge that routes
 * `<app>.fly.localhost:<port>` to the machines' service ports. Base URL = the value of
 * `FLY_API_HOSTNAME` (`url`), token = `FLY_API_TOKEN` (`token`). See README.md for what is
 * served and what is not; every route it does not serve fails loudly (404 naming the call).
 *
 * Wiring only: the routes are fly-apps.ts (apps, volumes), fly-machines-routes.ts (machines,
 * leases, metadata, wait), fly-exec.ts (exec); a machine's lifecycle is fly-machine.ts; the edge
 * is fly-edge.ts.
 */
import { createServer } from 'node:http';
import { chmod, mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { randomToken } from '../shared/ids.js';
import { localProviderOnTestInternet, testInternetDomains } from '../shared/test-internet-provider.js';
import { installLocalhostResolution } from '../shared/localhost-resolution.js';
import { appRoutes } from './fly-apps.js';
import { startFlyEdge } from './fly-edge.js';
import { execRoutes } from './fly-exec.js';
import { createFlyRouter } from './fly-http.js';
import { machineRoutes } from './fly-machines-routes.js';
import { FlyState } from './fly-state.js';

export interface FlyEmulatorOptions {
  /** Where machines run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** The token `Authorization: Bearer <token>` must carry. @default a random one (see `token`) */
  token?: string;
  /** Region of machines and volumes created without one. @default 'lcl' */
  region?: string;
  /** Lease owner shown in lease answers. @default 'emulator@fly.localhost' */
  owner?: string;
  /**
   * Local images for Fly image references (an absolute root filesystem directory, or `'host'`).
   * Any image not listed runs on the local provider's host image.
   * @default {}
   */
  images?: Record<string, string>;
  /**
   * Host directories mounted read-only into machines of an image reference, by path in the
   * machine: what the image's build put in it (a Dockerfile's `RUN npm install -g
   * @anthropic-ai/claude-code`), without building it. @default {}
   */
  imageMounts?: Record<string, Record<string, string>>;
  /**
   * Machines reach the test internet (test/egress-internet.ts, plus `hosts`) instead of the
   * local provider's real outbound network: their open internet is an allowlist of its names
   * through the local provider's egress proxy (`HTTP_PROXY` in every command's environment), as
   * a real machine reaches a public URL. Not with `provider`. @default false
   */
  testInternet?: boolean | TestInternetOptions;
  /** What an image's default command is in the emulator (a machine without `init`). @default ['sleep', 'infinity'] */
  defaultCommand?: string[];
}

export interface FlyEmulator {
  /** Base URL for `FLY_API_HOSTNAME`: `http://127.0.0.1:<port>` (paths start with `/v1`). */
  readonly url: string;
  /** The token for `FLY_API_TOKEN`. */
  readonly token: string;
  /**
   * The public domain, `fly.localhost`: `http://<app>.fly.localhost:<port>` reaches the service the
   * app's machines publish on external port `<port>` (Fly: `https://<app>.fly.dev:<port>`). Clients
   * resolve these names with `installLocalhostResolution()`.
   */
  readonly edgeDomain: string;
  /** Call counts by `METHOD pattern`, for tests and the benchmark. */
  readonly calls: ReadonlyMap<string, number>;
  /** Ends every machine's run, stops both listeners and removes the volume directories. */
  close(): Promise<void>;
}

export async function startFlyEmulator(options: FlyEmulatorOptions = {}): Promise<FlyEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  const network = internet ? { allowDomains: await testInternetDomains(options.testInternet) } : undefined;
  const token = options.token ?? `fly-emulator-${randomToken(24)}`;
  const volumeRoot = await mkdtemp(join(tmpdir(), 'fly-emulator-volumes-'));
  // The sandbox's unprivileged host uid has to get through to the volume directories below it.
  await chmod(volumeRoot, 0o711);
  const state = new FlyState({
    provider,
    token,
    region: options.region ?? 'lcl',
    owner: options.owner ?? 'emulator@fly.localhost',
    volumeRoot,
    images: options.images ?? {},
    imageMounts: options.imageMounts ?? {},
    network,
    defaultCommand: options.defaultCommand ?? ['sleep', 'infinity'],
  });
  const routes = [...appRoutes(state), ...execRoutes(state), ...machineRoutes(state)];
  const api = createServer(createFlyRouter(routes, { token, calls: state.calls }));
  // Waits and execs hold a request open for up to their timeout.
  api.requestTimeout = 0;
  api.headersTimeout = 60_000;
  api.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    api.once('error', reject);
    api.listen(0, '127.0.0.1', () => resolve());
  });
  const edge = startFlyEdge(state);
  state.edge = edge;
  // The emulator's own process reaches `*.fly.localhost` too (a test that starts it in-process).
  const uninstall = installLocalhostResolution();
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
    token,
    edgeDomain: edge.domain,
    calls: state.calls,
    close: () =>
      (closed ??= (async () => {
        uninstall();
        await state.closeAll();
        api.closeAllConnections();
        await new Promise<void>((resolve) => api.close(() => resolve()));
        await edge.close();
        await internet?.close();
      })()),
  };
}
