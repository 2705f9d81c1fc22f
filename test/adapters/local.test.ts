import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { startTestInternet, type TestInternet } from '../egress-internet.js';
import { egressTargets } from '../egress-targets.js';
import { localHostResources } from '../host-resources.js';

// The allowlist tests' destinations: names the provider's egress proxy resolves and dials into
// servers this run opened on loopback.
let internet: TestInternet | undefined;
afterAll(() => internet?.close());

defineSandboxConformanceSuite({
  name: 'local',
  describe,
  it,
  expect,
  beforeAll,
  afterAll,
  onTestFailed,
  capabilities: localCapabilities,
  createProvider: async () => {
    internet = await startTestInternet();
    return createLocalSandboxProvider({ egressNetwork: internet });
  },
  networkTargets: egressTargets,
  // Counted before and after the leak tests: each must return to its baseline.
  hostResources: () => localHostResources(),
});
