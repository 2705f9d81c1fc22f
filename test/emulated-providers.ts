/**
 * Each emulated provider as the tests that run one scenario on every provider reach it: the
 * emulator started in its own child process, and provider objects of the emulator's account.
 * The per-provider test files (the agent scenario, the agent service, the warm pool) share these
 * so that how a provider is reached is written once; what each file creates its sandboxes with,
 * and how it puts the CLI in, stays in that file.
 *
 * Every connection also installs the `*.localhost` resolution (reference counted, so harmless
 * where a test needs no tunnel names): E2B's port hosts, Daytona's preview links, Vercel's port
 * routes, Fly's edge and the bridge's quick tunnels are such names.
 */
import { ModalClient } from 'modal';
import { createCloudflareSandboxProvider } from '../adapters/cloudflare/index.js';
import { createDaytonaSandboxProvider } from '../adapters/daytona/index.js';
import { createE2bSandboxProvider } from '../adapters/e2b/index.js';
import { createFlySandboxProvider } from '../adapters/fly/index.js';
import { createKubernetesSandboxProvider } from '../adapters/kubernetes/index.js';
import { createModalSandboxProvider, type ModalSandboxProviderOptions } from '../adapters/modal/index.js';
import { createVercelSandboxProvider } from '../adapters/vercel/index.js';
import type { SandboxProvider } from '../src/spec/sandbox.js';
import type { TestInternetOptions } from './egress-internet.js';
import { spawnCloudflareBridgeEmulator } from './emulators/cloudflare/spawn.js';
import { spawnDaytonaEmulator } from './emulators/daytona/index.js';
import { spawnE2bEmulator } from './emulators/e2b/spawn.js';
import { installLocalhostResolution } from './emulators/fly/index.js';
import { spawnFlyEmulator } from './emulators/fly/spawn.js';
import { spawnKubernetesEmulator } from './emulators/kubernetes/spawn.js';
import { spawnModalEmulator } from './emulators/modal/spawn.js';
import { defaultRootfsBuilt as vercelRootfsBuilt } from './emulators/vercel/index.js';
import { spawnVercelEmulator } from './emulators/vercel/spawn.js';

/** A started emulator, and how to get provider objects of its account. */
export interface EmulatedProvider {
  /** A new provider object each call: a second one stands for an operator's script on the same account. */
  make(): SandboxProvider;
  /** Stops the emulator (and drops this connection's `*.localhost` resolution). */
  close(): Promise<void>;
}

/** What every emulator takes: hosts on its test internet (a sandbox's public internet), such as the credential proxy's. */
export interface EmulatedProviderOptions {
  testInternet?: TestInternetOptions;
}

/** The test internet's hosts that name one listener on this host: what a public URL's host resolves to, seen from a sandbox. */
export function testInternetFor(hosts: Record<string, number>): TestInternetOptions {
  return {
    hosts: Object.fromEntries(Object.entries(hosts).map(([name, port]) => [name, { address: '203.0.113.10', ports: { 80: port } }])),
  };
}

/** Wraps an emulator's close so that the `*.localhost` resolution goes with it. */
function withResolution(make: () => SandboxProvider, close: () => Promise<void>): EmulatedProvider {
  const uninstall = installLocalhostResolution();
  return {
    make,
    close: async () => {
      try {
        await close();
      } finally {
        uninstall();
      }
    },
  };
}

export async function connectE2b(options: EmulatedProviderOptions = {}): Promise<EmulatedProvider> {
  const emulator = await spawnE2bEmulator(options);
  return withResolution(
    () =>
      createE2bSandboxProvider({
        apiKey: 'e2b_emulator',
        apiUrl: emulator.url,
        sandboxUrl: emulator.sandboxUrl,
        domain: emulator.domain,
        tunnelScheme: 'http',
      }),
    () => emulator.close(),
  );
}

export async function connectDaytona(options: EmulatedProviderOptions = {}): Promise<EmulatedProvider> {
  const emulator = await spawnDaytonaEmulator(options);
  return withResolution(
    () => createDaytonaSandboxProvider({ apiKey: emulator.apiKey, apiUrl: emulator.url }),
    () => emulator.close(),
  );
}

/** Why the Vercel emulator cannot run here, or `undefined`. */
export const vercelSkipReason = (): string | undefined =>
  vercelRootfsBuilt() ? undefined : 'the Vercel emulator image is not built (scripts/build-vercel-images.sh)';

export async function connectVercel(options: EmulatedProviderOptions = {}): Promise<EmulatedProvider> {
  const emulator = await spawnVercelEmulator(options);
  return withResolution(
    () =>
      createVercelSandboxProvider({
        token: emulator.token,
        teamId: emulator.teamId,
        projectId: emulator.projectId,
        fetch: emulator.fetch,
        tunnelBaseUrl: emulator.tunnelBaseUrl,
      }),
    () => emulator.close(),
  );
}

export async function connectFly(
  options: EmulatedProviderOptions & {
    /** Host paths by sandbox path that an image reference's machines see: an image built from a recipe, emulated. */
    imageMounts?: Record<string, Record<string, string>>;
  } = {},
): Promise<EmulatedProvider> {
  const emulator = await spawnFlyEmulator(options);
  return withResolution(
    () =>
      createFlySandboxProvider({
        apiHostname: emulator.url,
        token: emulator.token,
        org: 'personal',
        publicDomain: emulator.edgeDomain,
        tunnelScheme: 'http',
      }),
    () => emulator.close(),
  );
}

export async function connectCloudflareBridge(
  options: EmulatedProviderOptions & {
    version: '0.12' | '0.13';
    /** Host paths by sandbox path in the Worker's container: its Dockerfile's additions, emulated. */
    containerMounts?: Record<string, string>;
  },
): Promise<EmulatedProvider> {
  const emulator = await spawnCloudflareBridgeEmulator(options);
  return withResolution(
    () => createCloudflareSandboxProvider({ url: emulator.url, token: emulator.token }),
    () => emulator.close(),
  );
}

export async function connectKubernetes(options: EmulatedProviderOptions = {}): Promise<EmulatedProvider> {
  const emulator = await spawnKubernetesEmulator(options);
  return withResolution(
    () => createKubernetesSandboxProvider({ kubeconfig: emulator.kubeconfigPath, namespace: emulator.namespace }),
    () => emulator.close(),
  );
}

/**
 * The Modal emulator through the real `modal` client. The SDK reads its server from
 * `MODAL_SERVER_URL`, so this sets it for the process: one Modal emulator per test file.
 */
export async function connectModal(
  options: EmulatedProviderOptions & { provider: Omit<ModalSandboxProviderOptions, 'client'> },
): Promise<EmulatedProvider> {
  const { provider: providerOptions, ...emulatorOptions } = options;
  const emulator = await spawnModalEmulator(emulatorOptions);
  process.env.MODAL_SERVER_URL = emulator.url;
  const client = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
  return withResolution(
    // Plain-HTTP tunnels unless the file asks otherwise: the tests fetch them without TLS.
    () => createModalSandboxProvider({ encryptPortsByDefault: false, ...providerOptions, client }),
    async () => {
      client.close();
      await emulator.close();
    },
  );
}
