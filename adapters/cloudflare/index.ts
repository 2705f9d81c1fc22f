export {
  createCloudflareSandboxProvider,
  CloudflareSandboxProvider,
  type CloudflareSandboxProviderOptions,
} from './cloudflare-provider.js';
export type { CloudflareSandbox } from './cloudflare-sandbox.js';
export {
  BridgeClient,
  type BridgeClientOptions,
  type BridgeOutputEvent,
  type BridgeProcessStatus,
  type BridgeTunnelRecord,
} from './cloudflare-client.js';
export {
  CloudflareBridgeHttpError,
  CloudflareDroppedReadError,
  mapCloudflareError,
  type CloudflareErrorContext,
} from './cloudflare-errors.js';
export {
  cloudflareBridgeFeatures,
  cloudflareBridgeVersions,
  cloudflareCapabilities,
  cloudflareCapabilitiesFor,
  cloudflareCreateOptionsSchema,
  cloudflareEnvironment,
  cloudflareIdPattern,
  cloudflareMarkerPath,
  cloudflareMaxWriteBytes,
  cloudflareStagingDirectory,
  cloudflareWorkspace,
  detectCloudflareBridgeVersion,
  parseCloudflareMarker,
  planCloudflareConnection,
  planCloudflareCreate,
  planCloudflareExec,
  planCloudflareFileRoute,
  planCloudflareTunnel,
  planCloudflareTunnelPort,
  planCloudflareWriteParts,
  type CloudflareBridgeFeatures,
  type CloudflareBridgeVersion,
  type CloudflareConnection,
  type CloudflareCreatePlan,
  type CloudflareExecRequest,
  type CloudflareFileRoute,
  type CloudflareMarker,
} from './cloudflare-options.js';
export { SseParser, readSseEvents, type SseEvent } from './cloudflare-sse.js';
