/**
 * The conformance suite every sandport adapter must pass, published as `sandport/testing`.
 *
 * @example
 * ```ts
 * import { describe, it, expect, beforeAll, afterAll, onTestFailed } from 'vitest';
 * import { defineSandboxConformanceSuite } from 'sandport/testing';
 * import { createMyProvider, myCapabilities } from '../src/index.js';
 *
 * defineSandboxConformanceSuite({
 *   name: 'my-provider',
 *   describe, it, expect, beforeAll, afterAll, onTestFailed,
 *   capabilities: myCapabilities,
 *   // Called in beforeAll, after the enclosing blocks' beforeAll (an emulator, a credential).
 *   createProvider: async () => createMyProvider({ client: await connect() }),
 * });
 * ```
 *
 * `capabilities` decide which tests run (a skipped test's title says why), and a suite test
 * checks that the provider reports the same. Every test has a stable id, shown at the end of its
 * title (`[exec.kill]`): `skip: { 'exec.kill': 'reason' }` leaves it out. Tests that need a tool
 * in the image (bash, node or python3) say so in the title and skip at run time when it is
 * missing (on runners whose test context has `skip`, like vitest; elsewhere they fail with the
 * reason). The image always needs `sh` and coreutils (`head`, `tr`, `wc`, `sleep`, `setsid`, and
 * GNU `find` for adapters whose files API runs over exec). Each group sets up its own sandboxes,
 * and every sandbox the suite creates is terminated at the end; with `onTestFailed`, a failing
 * test logs the ids of its sandboxes.
 *
 * To run a subset, pass the groups: `defineSandboxConformanceSuite(options, [execTests, filesTests])`.
 * A group is a function of the {@link SuiteContext}, so an adapter can add its own the same way.
 */
import { SuiteContext, type SandboxConformanceOptions } from './context.js';
import { capabilityTests } from './capability-tests.js';
import { eventsTests } from './events-tests.js';
import { execTests } from './exec-tests.js';
import { filesTests } from './files-tests.js';
import { lifecycleTests } from './lifecycle-tests.js';
import { networkTests } from './network-tests.js';
import { networkAllowlistTests } from './network-allowlist-tests.js';
import { snapshotTests } from './snapshot-tests.js';
import { reliabilityTests } from './reliability-tests.js';
import { leakTests } from './leak-tests.js';
import { entrypointTests } from './entrypoint-tests.js';
import { ptyTests } from './pty-tests.js';
import { watchTests } from './watch-tests.js';
import { pauseTests } from './pause-tests.js';

export type {
  ConformanceRunner,
  ConformanceTest,
  ConformanceTestBody,
  ExpectLike,
  NetworkTargets,
  RunnerTestContext,
  SandboxConformanceOptions,
} from './context.js';
export type { SuiteContext } from './context.js';
export { capabilityCoverage, type CapabilityFlag } from './capability-tests.js';
export { minimumLargeOutputMiB } from './exec-tests.js';
export { boundedMemoryLimitMiB } from './memory.js';
export { webSocketEcho } from './ws-client.js';
export {
  capabilityTests,
  entrypointTests,
  eventsTests,
  execTests,
  filesTests,
  leakTests,
  lifecycleTests,
  networkAllowlistTests,
  networkTests,
  pauseTests,
  ptyTests,
  reliabilityTests,
  snapshotTests,
  watchTests,
};

/** One group of the suite: registers its `describe` block and tests against the context. */
export type ConformanceGroup = (context: SuiteContext) => void;

/** Every group, in the order the full suite runs them. Add a group here to publish it. */
export const conformanceGroups: readonly ConformanceGroup[] = [
  lifecycleTests,
  execTests,
  ptyTests,
  filesTests,
  watchTests,
  networkTests,
  networkAllowlistTests,
  snapshotTests,
  pauseTests,
  entrypointTests,
  eventsTests,
  capabilityTests,
  reliabilityTests,
  leakTests,
];

/**
 * Registers the suite (or the `groups` given) in one `describe` block: the provider is created
 * in its `beforeAll` and every sandbox the suite made is terminated in its `afterAll`.
 */
export function defineSandboxConformanceSuite(
  options: SandboxConformanceOptions,
  groups: readonly ConformanceGroup[] = conformanceGroups,
): void {
  const context = new SuiteContext(options);
  options.describe(`sandport conformance: ${options.name}`, () => {
    options.beforeAll(() => context.start(), 120_000);
    options.afterAll(() => context.terminateAll(), 120_000);
    if (options.capabilities) {
      context.test('suite.capabilities', 'the provider reports the capabilities given to the suite', async () => {
        options.expect(context.provider.capabilities).toEqual(options.capabilities);
      });
    }
    if (options.skip) {
      const skip = options.skip;
      // Runs after registration, so every group's ids are known by then.
      context.test('suite.skip-keys', 'every skip key names a test of the suite', async () => {
        const unknown = Object.keys(skip).filter((key) => !context.registered.has(key));
        options
          .expect(
            unknown,
            `unknown skip keys; test ids are: ${[...context.registered].filter((key) => /^[a-z-]+\.[\w.-]+$/.test(key)).join(', ')}`,
          )
          .toEqual([]);
      });
    }
    for (const group of groups) group(context);
  });
}
