export { createE2bSandboxProvider, e2bSdkVersion, type E2bSandboxProvider, type E2bSandboxProviderOptions } from './e2b-provider.js';
export type { E2bSandbox } from './e2b-sandbox.js';
export { mapE2bError, mapE2bNetworkUpdateError, type E2bErrorContext } from './e2b-errors.js';
export {
  planE2bCreate,
  planE2bExec,
  planE2bNetwork,
  planE2bNetworkUpdate,
  planE2bMetadata,
  planE2bTunnel,
  e2bCapabilities,
  e2bCommandLine,
  e2bCreateOptionsSchema,
  e2bDefaultTemplate,
  e2bDefaultTimeoutMs,
  e2bMaxTimeoutMs,
  e2bMetadataKeys,
  e2bTrafficTokenHeader,
  type E2bCreateDefaults,
  type E2bCreateOptions,
  type E2bCreatePlan,
  type E2bResourceTemplate,
  type E2bTemplatePlan,
} from './e2b-options.js';
