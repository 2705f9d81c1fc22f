import { isIP } from 'node:net';
import { SandboxCapabilityUnsupportedError } from '../errors/index.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { SandboxProvider } from '../spec/sandbox.js';

/**
 * Create options whose network lets the sandbox reach the credential proxy's public URL (pure).
 * Open networks are left alone; an allowlist gets the URL's host added (a name to
 * `allowDomains`, an address to `allowCidrs` as one host); `'block'` becomes an allowlist of that
 * host alone: the sandbox reaches the proxy and nothing else, as with a host route. Throws
 * `SandboxCapabilityUnsupportedError` (`network.allowDomains` or `network.allowCidrs`) when the
 * provider cannot allow that one host.
 */
export function withPublicUrlReach(options: CreateSandboxOptions, publicUrl: string, provider: SandboxProvider): CreateSandboxOptions {
  const network = options.network;
  if (network === undefined || network === 'allow') return options;
  const host = new URL(publicUrl).hostname.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(host);
  const capability = family === 0 ? 'allowDomains' : 'allowCidrs';
  if (!provider.capabilities.network[capability]) {
    throw new SandboxCapabilityUnsupportedError({
      message:
        `A sandbox of provider "${provider.id}" with network ${network === 'block' ? "'block'" : 'an allowlist'} cannot be let through to the ` +
        `credential proxy at ${publicUrl}: the provider has no network.${capability}` +
        (family === 0 ? ' (give publicUrl with an IP address, or open the network)' : ' (open the network)'),
      capability: `network.${capability}`,
      provider: provider.id,
    });
  }
  const current = network === 'block' ? { allowCidrs: [], allowDomains: [] } : network;
  const allowCidrs = [...(current.allowCidrs ?? [])];
  const allowDomains = [...(current.allowDomains ?? [])];
  if (family === 0) {
    if (!allowDomains.includes(host)) allowDomains.push(host);
  } else {
    const block = `${host}/${family === 4 ? 32 : 128}`;
    if (!allowCidrs.includes(block)) allowCidrs.push(block);
  }
  return { ...options, network: { allowCidrs, allowDomains } };
}
