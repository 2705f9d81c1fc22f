export {
  createDaytonaSandboxProvider,
  constructDaytona,
  daytonaSdkVersion,
  DaytonaSandboxProvider,
  type DaytonaSandboxProviderOptions,
} from './daytona-provider.js';
export type { DaytonaSandbox } from './daytona-sandbox.js';
export { mapDaytonaError, type DaytonaErrorContext } from './daytona-errors.js';
export { DaytonaLogDemux, daytonaLogsUrl, type DaytonaLogPiece } from './daytona-process.js';
export {
  daytonaCapabilities,
  daytonaCommandLine,
  daytonaCreateOptionsSchema,
  daytonaDefaultApiUrl,
  daytonaDefaultImage,
  daytonaDefaultTimeoutMs,
  daytonaLabelKeys,
  daytonaMaxTimeoutMs,
  daytonaStdinEofLine,
  daytonaStdinLine,
  daytonaStdinRelayScript,
  planDaytonaConfig,
  planDaytonaCreate,
  planDaytonaLabels,
  planDaytonaNetwork,
  planDaytonaSessionCommand,
  planDaytonaSource,
  planDaytonaTtl,
  planDaytonaTunnel,
  tagsFromDaytonaLabels,
  type DaytonaConfigPlan,
  type DaytonaCreateDefaults,
  type DaytonaCreateOptions,
  type DaytonaCreateParams,
  type DaytonaCreatePlan,
  type DaytonaNetworkSettings,
  type DaytonaSourcePlan,
} from './daytona-options.js';
