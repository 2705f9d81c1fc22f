/**
 * The conformance suite every sandport adapter must pass, published as `sandport/testing`.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeAll, afterAll } from 'vitest';
 * import { defineSandboxConformanceSuite } from 'sandport/testing';
 * import { createMyProvider } from '../src/index.js';
 *
 * defineSandboxConformanceSuite({
 *   name: 'my-provider',
 *   describe, it, expect, beforeAll, afterAll,
 *   createProvider: () => createMyProvider(),
 * });
 * ```
 *
 * Groups run only when the provider's `capabilities` say the feature exists; a skipped test's
 * title says why. Each group sets up its own sandboxes, and every sandbox the suite creates is
 * terminated at the end.
 */
import { SuiteContext, type SandboxConformanceOptions } from './context.js';
import { execTests } from './exec-tests.js';
import { filesTests } from './files-tests.js';
import { lifecycleTests } from './lifecycle-tests.js';
import { networkTests } from './network-tests.js';
import { snapshotTests } from './snapshot-tests.js';

export type { ConformanceRunner, ExpectLike, SandboxConformanceOptions } from './context.js';
export { webSocketEcho } from './ws-client.js';

export function defineSandboxConformanceSuite(options: SandboxConformanceOptions): void {
  const context = new SuiteContext(options);
  options.describe(`sandport conformance: ${options.name}`, () => {
    // Construction does no I/O by contract, so the capabilities are known while tests register.
    const provider = options.createProvider();
    if (provider instanceof Promise) throw new Error('createProvider must return the provider synchronously (construction does no I/O)');
    context.provider = provider;
    options.afterAll(() => context.terminateAll(), 120_000);
    lifecycleTests(context);
    execTests(context);
    filesTests(context);
    networkTests(context);
    snapshotTests(context);
  });
}
