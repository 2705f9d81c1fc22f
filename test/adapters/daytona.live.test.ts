/**
 * The conformance suite against real Daytona. Runs only with DAYTONA_API_KEY set (and no
 * DAYTONA_API_URL pointing elsewhere); prints that it was skipped otherwise.
 *   DAYTONA_API_KEY=… npx vitest run test/adapters/daytona.live.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDaytonaSandboxProvider, daytonaCapabilities } from '../../adapters/daytona/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const live = Boolean(process.env.DAYTONA_API_KEY) && !process.env.DAYTONA_API_URL;
if (!live) console.warn('skipping the live Daytona conformance run: DAYTONA_API_KEY is not set (or DAYTONA_API_URL points elsewhere)');

describe.skipIf(!live)(`daytona provider (live)${live ? '' : ' (skipped: DAYTONA_API_KEY is not set)'}`, () => {
  defineSandboxConformanceSuite({
    name: 'daytona-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    capabilities: daytonaCapabilities,
    // Daytona's default snapshot has Python, git and a non-root user `daytona` with sudo.
    createProvider: () => createDaytonaSandboxProvider(),
    testTimeoutMs: 300_000,
  });
});
