export { createLocalSandboxProvider, type LocalSandboxProvider } from './local-provider.js';
export type { LocalSandbox } from './local-sandbox.js';
export {
  localCapabilities,
  localCreateOptionsSchema,
  localDefaultTimeoutMs,
  localMaxTimeoutMs,
  planLocalCreate,
  type LocalCreateOptions,
  type LocalCreatePlan,
  type LocalHostFacts,
  type LocalImagePlan,
  type LocalSandboxProviderOptions,
} from './local-options.js';
