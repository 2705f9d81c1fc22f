export { createLocalSandboxProvider, localCapabilities, type LocalSandboxProvider } from './local-provider.js';
export type { LocalSandbox } from './local-sandbox.js';
export {
  checkSnapshotId,
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
export { bwrapStage, execArgv, maskedDirs, maskedFiles, probedHostPaths, type BwrapInputs } from './local-bwrap.js';
