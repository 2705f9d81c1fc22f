import { SandboxCapabilityUnsupportedError, SandboxInvalidArgumentError } from '../errors/index.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { SandboxHostRoute, SandboxProvider } from '../spec/sandbox.js';

/**
 * The route from a provider's sandboxes to one host service on a Unix socket, through the
 * contract's optional `provider.openHostRoute` (each adapter owns how: a forwarder on the
 * sandbox's loopback, a bind-mounted socket, a tunnel). Throws `SandboxCapabilityUnsupportedError`
 * (capability `hostRoutes`) when the provider has none.
 */
export function openHostRoute(provider: SandboxProvider, hostSocketPath: string, options: { sandboxPort: number }): SandboxHostRoute {
  if (typeof provider !== 'object' || provider === null || typeof provider.id !== 'string') {
    throw new SandboxInvalidArgumentError({
      message: 'Pass the provider object (provider, not provider.id): the route is opened by the provider itself',
      argument: 'provider',
    });
  }
  if (!provider.capabilities.hostRoutes || typeof provider.openHostRoute !== 'function') {
    throw new SandboxCapabilityUnsupportedError({
      message: `Sandboxes of provider "${provider.id}" have no route to a host service; pass the credentials into the sandbox explicitly`,
      capability: 'hostRoutes',
      provider: provider.id,
    });
  }
  return provider.openHostRoute(hostSocketPath, options);
}

/** Merges route options into create options (provider options and volumes are merged one level deep). */
export function withHostRoute(options: CreateSandboxOptions, route: SandboxHostRoute): CreateSandboxOptions {
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
