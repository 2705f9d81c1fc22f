import { SandboxCapabilityUnsupportedError } from '../errors/index.js';
import type { CreateSandboxOptions } from '../spec/options.js';

/**
 * One deliberately opened path from inside a sandbox to one host service that listens on a host
 * unix socket. The sandbox never joins the host's network; it gets exactly this route.
 */
export interface HostRoute {
  /** Options to merge into `provider.create(…)`: the route exists from the sandbox's creation on. */
  readonly createOptions: Pick<CreateSandboxOptions, 'providerOptions' | 'volumes' | 'env'>;
  /** Base URL that processes inside the sandbox use to reach the host service (`http://127.0.0.1:<port>`). */
  readonly sandboxUrl: string;
}

/**
 * How one provider opens a `HostRoute`. Providers differ, so this is a table keyed by provider
 * id rather than a method of the contract:
 * - `local`: `providerOptions.local.hostForwards`, a TCP listener on the sandbox's own loopback
 *   that forwards each connection to the host socket.
 * - `docker`: `providerOptions.docker.hostForwards`, the host socket bind-mounted and a forwarder
 *   on the container's loopback (node or python3 in the image).
 * Other providers (cloud providers through a tunnel) register theirs with `registerHostRouteOpener`.
 */
export type HostRouteOpener = (hostSocketPath: string, options: { sandboxPort: number }) => HostRoute;

const openers = new Map<string, HostRouteOpener>([
  [
    'local',
    (hostSocketPath, { sandboxPort }) => ({
      createOptions: { providerOptions: { local: { hostForwards: { [sandboxPort]: hostSocketPath } } } },
      sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
    }),
  ],
  [
    'docker',
    (hostSocketPath, { sandboxPort }) => ({
      createOptions: { providerOptions: { docker: { hostForwards: { [sandboxPort]: hostSocketPath } } } },
      sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
    }),
  ],
]);

/** Adds or replaces the opener of a provider id. */
export function registerHostRouteOpener(providerId: string, opener: HostRouteOpener): void {
  openers.set(providerId, opener);
}

/** Whether sandboxes of `providerId` can reach a host socket (and so use the credential proxy). */
export function canOpenHostRoute(providerId: string): boolean {
  return openers.has(providerId);
}

/**
 * The route from a sandbox of `providerId` to `hostSocketPath`.
 * Throws `SandboxCapabilityUnsupportedError` (capability `hostRoute`) when the provider has none.
 */
export function openHostRoute(providerId: string, hostSocketPath: string, options: { sandboxPort: number }): HostRoute {
  const opener = openers.get(providerId);
  if (!opener) {
    throw new SandboxCapabilityUnsupportedError({
      message: `Sandboxes of provider "${providerId}" have no route to a host service; register one with registerHostRouteOpener, or pass the credentials into the sandbox explicitly`,
      capability: 'hostRoute',
      provider: providerId,
    });
  }
  return opener(hostSocketPath, options);
}

/** Merges route options into create options (provider options and volumes are merged one level deep). */
export function withHostRoute(options: CreateSandboxOptions, route: HostRoute): CreateSandboxOptions {
  const providerOptions: Record<string, Record<string, unknown>> = { ...options.providerOptions };
  for (const [provider, extra] of Object.entries(route.createOptions.providerOptions ?? {})) {
    const current = providerOptions[provider] ?? {};
    const merged: Record<string, unknown> = { ...current };
    for (const [key, value] of Object.entries(extra)) {
      const existing = current[key];
      merged[key] = isPlainObject(existing) && isPlainObject(value) ? { ...existing, ...value } : value;
    }
    providerOptions[provider] = merged;
  }
  return {
    ...options,
    providerOptions,
    ...(route.createOptions.volumes || options.volumes ? { volumes: { ...options.volumes, ...route.createOptions.volumes } } : {}),
    ...(route.createOptions.env || options.env ? { env: { ...options.env, ...route.createOptions.env } } : {}),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
