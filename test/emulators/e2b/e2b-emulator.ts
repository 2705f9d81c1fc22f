/**
 * A local E2B emulator: two plain HTTP/1.1 servers on 127.0.0.1 that the real `e2b` SDK reaches
 * through `E2B_API_URL` (the control plane's REST API) and `E2B_SANDBOX_URL` (envd, for every
 * sandbox: requests carry `E2b-Sandbox-Id`), running every sandbox in the local bubblewrap
 * provider. Any route it does not serve is a 501 naming the call, never a hang.
 *
 * This file wires the parts: the state (e2b-state.ts), one handler group per concern
 * (e2b-sandboxes.ts: control plane; e2b-process.ts, e2b-filesystem.ts, e2b-files.ts: envd),
 * the HTTP plumbing (e2b-http.ts) and Connect RPC (e2b-connect.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalSandboxProvider, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { TestInternetOptions } from '../../egress-internet.js';
import { localProviderOnTestInternet } from '../shared/test-internet-provider.js';
import { createRouter, type E2bRoute } from './e2b-http.js';
import { controlPlaneRoutes } from './e2b-sandboxes.js';
import { processRoutes } from './e2b-process.js';
import { filesystemRoutes } from './e2b-filesystem.js';
import { fileRoutes } from './e2b-files.js';
import { E2bState } from './e2b-state.js';
import { templateRoutes } from './e2b-templates.js';
import { startTunnelProxy } from './e2b-tunnels.js';

export interface E2bEmulatorOptions {
  /** Where sandboxes run. @default a new local provider */
  provider?: LocalSandboxProvider;
  /** The API key the control plane accepts. @default any non-empty key */
  apiKey?: string;
  /**
   * Without `provider`: run sandboxes in a local provider whose egress goes to the test internet
   * (../shared/test-internet-provider.ts), so that allowlists reach `allowed.test`; an object adds
   * hosts of the test's own to that internet (`TestInternetOptions.hosts`). @default false
   */
  testInternet?: boolean | TestInternetOptions;
}

export interface E2bEmulator {
  /** Value for `E2B_API_URL` (the control plane); also what `spawnEmulator` reports. */
  readonly url: string;
  /** Value for `E2B_SANDBOX_URL` (envd of every sandbox). */
  readonly sandboxUrl: string;
  /** Value for `E2B_DOMAIN`: host names of tunnels are `<port>-<sandboxID>.<domain>`. */
  readonly domain: string;
  /** Call counts by `METHOD pattern`, for tests and the benchmark. */
  readonly calls: E2bState['calls'];
  /** Terminates every sandbox it started and stops both servers. */
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export async function startE2bEmulator(options: E2bEmulatorOptions = {}): Promise<E2bEmulator> {
  const internet =
    !options.provider && options.testInternet
      ? await localProviderOnTestInternet(options.testInternet === true ? {} : options.testInternet)
      : undefined;
  const provider = options.provider ?? internet?.provider ?? createLocalSandboxProvider();
  // The tunnel proxy's port is part of the domain that getHost() builds host names with.
  const tunnels = await startTunnelProxy();
  const state = new E2bState({ provider, apiKey: options.apiKey, domain: tunnels.domain });
  state.closers.add(() => tunnels.close());
  // Templates first: their `/templates/tags` would otherwise match the snapshots' `DELETE /templates/:templateID`.
  const controlPlane: E2bRoute[] = [...templateRoutes(state), ...controlPlaneRoutes(state, tunnels)];
  const envd: E2bRoute[] = [...processRoutes(state), ...filesystemRoutes(state), ...fileRoutes(state)];
  const api = createServer(
    createRouter(controlPlane, { label: 'control plane', calls: state.calls.api, check: (request) => state.checkApiKey(request) }),
  );
  const sandboxes = createServer(createRouter(envd, { label: 'envd', calls: state.calls.envd }));
  // Streams (process output, watches) stay open for as long as the command or the watch runs.
  for (const server of [api, sandboxes]) {
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 5_000;
  }
  const [apiPort, envdPort] = await Promise.all([listen(api), listen(sandboxes)]);
  return {
    url: `http://127.0.0.1:${apiPort}`,
    sandboxUrl: `http://127.0.0.1:${envdPort}`,
    domain: state.domain,
    calls: state.calls,
    async close() {
      await state.sandboxes.terminateAll();
      for (const closer of state.closers) await closer().catch(() => undefined);
      for (const server of [api, sandboxes]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await internet?.close();
    },
  };
}
