/** Warm pools (`createSandboxPool`): the application API of src/pool. The planning functions stay internal. */
export { createSandboxPool, type SandboxPool, type SandboxPoolStats } from './sandbox-pool.js';
export { SandboxPoolClosedError, poolClosedErrorCode } from './pool-errors.js';
export { SandboxPoolEmitter, type SandboxPoolEvents, type SandboxPoolOperation } from './pool-events.js';
export type { SandboxPoolHookContext, SandboxPoolOptions, SandboxPoolRetireReason } from './pool-options.js';
