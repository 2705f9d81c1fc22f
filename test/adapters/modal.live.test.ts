/**
 * The conformance suite against real Modal. Runs only with MODAL_TOKEN_ID and MODAL_TOKEN_SECRET
 * set (and no MODAL_SERVER_URL pointing elsewhere); prints that it was skipped otherwise.
 *   MODAL_TOKEN_ID=… MODAL_TOKEN_SECRET=… npx vitest run test/adapters/modal.live.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModalSandboxProvider } from '../../adapters/modal/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

const live = Boolean(process.env.MODAL_TOKEN_ID && process.env.MODAL_TOKEN_SECRET);
if (!live) console.warn('skipping the live Modal conformance run: MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set');

describe.skipIf(!live)('modal provider (live)', () => {
  defineSandboxConformanceSuite({
    name: 'modal-live',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    createProvider: () => createModalSandboxProvider({ appName: process.env.SANDPORT_MODAL_APP ?? 'sandport-conformance' }),
    // python:3.13-slim has bash, coreutils and python3 for the tunnel servers.
    createOptions: { image: 'python:3.13-slim' },
    testTimeoutMs: 300_000,
  });
});
