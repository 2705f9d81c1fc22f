/**
 * The conformance suite against a deployed bridge Worker of `@cloudflare/sandbox` (0.12 or 0.13:
 * the adapter detects which). Runs only with CLOUDFLARE_SANDBOX_BRIDGE_URL and
 * CLOUDFLARE_SANDBOX_BRIDGE_TOKEN set; prints that it was skipped otherwise.
 *   CLOUDFLARE_SANDBOX_BRIDGE_URL=https://… CLOUDFLARE_SANDBOX_BRIDGE_TOKEN=… npx vitest run test/adapters/cloudflare.live.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudflareCapabilities, cloudflareEnvironment, createCloudflareSandboxProvider } from '../../adapters/cloudflare/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const live = Boolean(process.env[cloudflareEnvironment.url]) && Boolean(process.env[cloudflareEnvironment.token]);
if (!live)
  console.warn(
    `skipping the live Cloudflare conformance run: ${cloudflareEnvironment.url} and ${cloudflareEnvironment.token} are not both set`,
  );

describe.skipIf(!live)('cloudflare provider (live bridge)', () => {
  defineSandboxConformanceSuite({
    name: 'cloudflare-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    // The flags are the same for both bridge versions; the provider detects its bridge's.
    capabilities: cloudflareCapabilities,
    createProvider: () => createCloudflareSandboxProvider(),
    // A deploy allows few containers at once (`max_instances`, 3 in the bridge's template): keep the heavy groups small.
    scale: { largeOutputMiB: 192, largeFileMiB: 64, leakCycles: 20 },
    testTimeoutMs: 300_000,
  });
});
