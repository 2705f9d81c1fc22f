export { createFlySandboxProvider, FlySandboxProvider, type FlySandboxProviderOptions } from './fly-provider.js';
export type { FlySandbox } from './fly-sandbox.js';
export { FlyClient, flyDefaultApiHostname, type FlyClientOptions, type FlyMachine, type FlyExecResponse } from './fly-client.js';
export { mapFlyError, FlyApiError, type FlyErrorContext } from './fly-errors.js';
export {
  flyCapabilities,
  flyCreateOptionsSchema,
  flyDefaultImage,
  flyDefaultTimeoutMs,
  flyMaxTimeoutMs,
  flyMetadataKeys,
  planFlyAppName,
  planFlyCreate,
  planFlyDeadline,
  planFlyGuest,
  planFlyMetadata,
  planFlyMounts,
  planFlyPorts,
  planFlyServices,
  planFlyTagUpdate,
  planFlyTunnel,
  tagsFromFlyMetadata,
  type FlyCreateOptions,
  type FlyCreatePlan,
  type FlyGuest,
  type FlyMachineConfig,
  type FlyService,
} from './fly-options.js';
