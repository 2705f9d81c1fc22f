/**
 * The bridge network of sandboxes that have network access. On Docker's default bridge every
 * sandbox could reach every other sandbox's ports, so ours has inter-container traffic off.
 */
import type Docker from 'dockerode';
import { SandboxProviderError } from '../../src/kit/index.js';
import { isEngineConflict, isEngineNotFound, mapDockerError } from './docker-errors.js';
import { labels } from './docker-engine.js';
import { isolatedNetworkName } from './docker-options.js';

type NetworkInfo = { Driver?: string; Options?: Record<string, string> };

/** What `ensureIsolatedNetwork` needs: one promise per provider, reset when it fails. */
export interface NetworkCache {
  pending: Promise<string> | undefined;
}

/**
 * Resolves with the network's name once it exists with inter-container traffic off; creates it
 * if missing. Throws `SandboxProviderError` when a network of that name lets containers reach
 * each other (someone else made it).
 */
export function ensureIsolatedNetwork(docker: Docker, cache: NetworkCache): Promise<string> {
  cache.pending ??= (async () => {
    const inspect = () => docker.getNetwork(isolatedNetworkName).inspect() as Promise<NetworkInfo>;
    let info = await inspect().catch((error: unknown) => {
      if (!isEngineNotFound(error)) throw mapDockerError(error, { operation: 'network inspect' });
      return undefined;
    });
    if (!info) {
      await docker
        .createNetwork({
          Name: isolatedNetworkName,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { [labels.managed]: 'network' },
          Options: { 'com.docker.network.bridge.enable_icc': 'false' },
        })
        .catch((error: unknown) => {
          // Another process created it first.
          if (!isEngineConflict(error)) throw mapDockerError(error, { operation: 'network create' });
        });
      info = await inspect().catch((error: unknown) => {
        throw mapDockerError(error, { operation: 'network inspect' });
      });
    }
    if (info.Driver !== 'bridge' || info.Options?.['com.docker.network.bridge.enable_icc'] !== 'false') {
      throw new SandboxProviderError({
        message: `The Docker network "${isolatedNetworkName}" exists but lets containers reach each other (it was not made by sandport); remove it with: docker network rm ${isolatedNetworkName}`,
        provider: 'docker',
      });
    }
    return isolatedNetworkName;
  })();
  cache.pending.catch(() => (cache.pending = undefined));
  return cache.pending;
}
