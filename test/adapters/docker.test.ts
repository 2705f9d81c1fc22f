import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createDockerSandboxProvider, dockerCapabilities } from '../../adapters/docker/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { startTestInternet, type TestInternet } from '../egress-internet.js';
import { egressTargets } from '../egress-targets.js';
import { dockerHostResources } from '../host-resources.js';

const available = dockerAvailable();
if (!available)
  console.warn(
    `skipping the docker conformance run: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`,
  );

describe.skipIf(!available)('docker provider', () => {
  // The allowlist tests' destinations: names the provider's egress proxy resolves and dials into
  // servers this run opened on loopback.
  let internet: TestInternet | undefined;
  afterAll(() => internet?.close());
  defineSandboxConformanceSuite({
    name: 'docker',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: dockerCapabilities,
    createProvider: async () => {
      internet = await startTestInternet();
      return createDockerSandboxProvider({ defaultImage: baseImage, egressNetwork: internet });
    },
    networkTargets: egressTargets,
    // Counted before and after the leak tests: each must return to its baseline.
    hostResources: () => dockerHostResources(),
    // 300 cycles take about 4 minutes here (a container each); 60 show a leak as well.
    scale: { leakCycles: 60 },
    // The base image is debootstrap minbase; the tunnel test needs python3, which this builds
    // once (cached by content) through the provider's own image builds.
    createOptions: {
      image: {
        base: baseImage,
        commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
      },
    },
  });
});
