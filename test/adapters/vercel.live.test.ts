/**
 * The conformance suite against real Vercel Sandbox. Runs only with credentials in the
 * environment (VERCEL_TOKEN with VERCEL_TEAM_ID and VERCEL_PROJECT_ID, or VERCEL_OIDC_TOKEN from
 * `vercel env pull`) and no SANDPORT_VERCEL_API_URL pointing elsewhere; prints that it was
 * skipped otherwise.
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx vitest run test/adapters/vercel.live.test.ts
 * Vercel's default user is `vercel-sandbox`: the suite writes under /workspace and /root, so
 * every command runs with sudo here (providerOptions.vercel.sudo).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVercelSandboxProvider, vercelCapabilities } from '../../adapters/vercel/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const env = process.env;
const credentials = Boolean(env.VERCEL_TOKEN && env.VERCEL_TEAM_ID && env.VERCEL_PROJECT_ID) || Boolean(env.VERCEL_OIDC_TOKEN);
const live = credentials && !env.SANDPORT_VERCEL_API_URL;
if (!live)
  console.warn(
    'skipping the live Vercel conformance run: VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID (or VERCEL_OIDC_TOKEN) are not set, or SANDPORT_VERCEL_API_URL points elsewhere',
  );

describe.skipIf(!live)(`vercel provider (live)${live ? '' : ': skipped, no Vercel credentials in the environment'}`, () => {
  defineSandboxConformanceSuite({
    name: 'vercel-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    capabilities: vercelCapabilities,
    createProvider: () => createVercelSandboxProvider(),
    createOptions: { providerOptions: { vercel: { sudo: true } } },
    skip: {
      'capabilities.limits-accepted': 'Vercel memory is 2048 MiB per vCPU: memoryMiB 512 is refused, not weakened',
    },
    testTimeoutMs: 300_000,
  });
});
