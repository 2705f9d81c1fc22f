export {
  createVercelSandboxProvider,
  vercelApiBase,
  vercelApiFetch,
  vercelGeneratedNamePrefix,
  vercelSdkVersion,
  type VercelSandboxProvider,
  type VercelSandboxProviderOptions,
} from './vercel-provider.js';
export type { VercelSandbox } from './vercel-sandbox.js';
export type { VercelSandboxProcess } from './vercel-process.js';
export { mapVercelError, type VercelErrorContext } from './vercel-errors.js';
export { vercelWritePartBytes } from './vercel-files.js';
export {
  planVercelCreate,
  planVercelCredentials,
  planVercelExec,
  planVercelExtension,
  planVercelListFilter,
  planVercelNetwork,
  planVercelNetworkUpdate,
  planVercelResources,
  planVercelTags,
  planVercelTunnel,
  vercelCapabilities,
  vercelCreateOptionsSchema,
  vercelExecOptionsSchema,
  vercelExitStatus,
  vercelDefaultTimeoutMs,
  vercelMaxPorts,
  vercelMaxTags,
  vercelMaxTimeoutMs,
  vercelMaxVcpus,
  vercelMemoryPerVcpuMiB,
  type VercelCreateOptions,
  type VercelCreateParams,
  type VercelCreatePlan,
  type VercelCredentialsPlan,
  type VercelExecPlan,
} from './vercel-options.js';
