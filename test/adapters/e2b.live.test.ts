/**
 * The conformance suite against real E2B. Runs only with E2B_API_KEY set (and no E2B_API_URL
 * pointing elsewhere); prints that it was skipped otherwise.
 *   E2B_API_KEY=… npx vitest run test/adapters/e2b.live.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createE2bSandboxProvider, e2bCapabilities } from '../../adapters/e2b/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const live = Boolean(process.env.E2B_API_KEY) && !process.env.E2B_API_URL;
if (!live) console.warn('skipping the live E2B conformance run: E2B_API_KEY is not set (or E2B_API_URL points elsewhere)');

describe.skipIf(!live)('e2b provider (live)', () => {
  defineSandboxConformanceSuite({
    name: 'e2b-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    capabilities: e2bCapabilities,
    // E2B's `base` template has bash, coreutils, python3 and util-linux's script.
    createProvider: () => createE2bSandboxProvider({ defaultTemplate: process.env.SANDPORT_E2B_TEMPLATE ?? 'base' }),
    testTimeoutMs: 300_000,
  });
});
