import { execSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

// scripts/setup-docker.sh (run by .ci/run) starts the engine and imports this image.
export const baseImage = process.env.SANDPORT_DOCKER_BASE_IMAGE ?? 'sandport/base:bookworm';

export function dockerAvailable(): boolean {
  try {
    execSync(`docker image inspect ${baseImage}`, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const available = dockerAvailable();
if (!available) console.warn(`skipping the docker conformance run: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`);

describe.skipIf(!available)('docker provider', () => {
  defineSandboxConformanceSuite({
    name: 'docker',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    createProvider: () => createDockerSandboxProvider({ defaultImage: baseImage }),
    // The base image is debootstrap minbase; the tunnel test needs python3, which this builds
    // once (cached by content) through the provider's own image builds.
    createOptions: {
      image: { base: baseImage, commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'] },
    },
  });
});
