/**
 * Every egress-allowlist bypass of issue 15 tried against the Docker provider (a container with
 * `NetworkMode: none` and the bridge to its egress proxy).
 */
import { describe } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { defineEgressAttacks } from './egress-attacks.js';

const available = dockerAvailable();
if (!available) console.warn('skipping the docker egress attack tests: no engine answers or the base image is missing');

describe.skipIf(!available)('docker provider', () => {
  defineEgressAttacks('docker', {
    makeProvider: (network) => createDockerSandboxProvider({ defaultImage: baseImage, ...(network ? { egressNetwork: network } : {}) }),
    createOptions: { image: baseImage },
  });
});
