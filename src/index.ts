/**
 * `sandport`: the application API. The contract's types, the errors, the stream helpers, and the
 * agent layer. Adapters live in their own subpaths (`sandport/local`, `sandport/docker`, …);
 * what adapter authors share is in `sandport/kit`.
 */
export * from './errors/index.js';
export type * from './spec/options.js';
export type * from './spec/sandbox.js';
export type { SandboxCapabilities } from './spec/sandbox-capabilities.js';
export { type EgressEvent, type EgressProtocol, SandboxEmitter, type SandboxEvents, type SandboxWarning } from './spec/events.js';
export { readBytes, readText, lines, toNodeReadable, fromAsyncIterable, fromNodeReadable } from './streams/index.js';
export { requireCapability } from './kit/capability.js';
export * from './agent/index.js';
export {
  createSandboxPool,
  poolClosedErrorCode,
  SandboxPoolClosedError,
  SandboxPoolEmitter,
  type SandboxPool,
  type SandboxPoolEvents,
  type SandboxPoolHookContext,
  type SandboxPoolOperation,
  type SandboxPoolOptions,
  type SandboxPoolRetireReason,
  type SandboxPoolStats,
} from './pool/index.js';
