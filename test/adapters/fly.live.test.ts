/**
 * The conformance suite against real Fly Machines. Runs only with FLY_API_TOKEN and FLY_ORG set
 * (and no FLY_API_HOSTNAME pointing elsewhere than Fly's); prints that it was skipped otherwise.
 *   FLY_API_TOKEN=… FLY_ORG=my-org npx vitest run test/adapters/fly.live.test.ts
 * SANDPORT_FLY_IMAGE names the image (it needs sh, coreutils, find and, for the tunnel tests,
 * node or python3); SANDPORT_FLY_REGION a region.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlySandboxProvider, flyCapabilities } from '../../adapters/fly/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const hostname = process.env.FLY_API_HOSTNAME;
const live =
  Boolean(process.env.FLY_API_TOKEN) && Boolean(process.env.FLY_ORG) && (hostname === undefined || hostname === 'https://api.machines.dev');
if (!live)
  console.warn('skipping the live Fly conformance run: FLY_API_TOKEN and FLY_ORG are not both set (or FLY_API_HOSTNAME points elsewhere)');

describe.skipIf(!live)('fly provider (live)', () => {
  defineSandboxConformanceSuite({
    name: 'fly-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    capabilities: flyCapabilities,
    createProvider: () =>
      createFlySandboxProvider({
        org: process.env.FLY_ORG,
        ...(process.env.SANDPORT_FLY_IMAGE ? { defaultImage: process.env.SANDPORT_FLY_IMAGE } : {}),
      }),
    createOptions: process.env.SANDPORT_FLY_REGION ? { providerOptions: { fly: { region: process.env.SANDPORT_FLY_REGION } } } : undefined,
    testTimeoutMs: 300_000,
    skip: {
      'pause.exec-waits': "it reads output before the command exits: Fly's exec output is buffered (exec.streaming false)",
    },
  });
});
