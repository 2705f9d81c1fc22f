/**
 * `sandport/kit`: what adapter authors build a provider with. Not part of the application API
 * (`sandport`), and not re-exported from it: an app never needs these, and an adapter that
 * imports only this door never loads the agent layer.
 *
 * It re-exports the contract (types, schemas, errors, events, stream helpers) so that an adapter
 * has one import, plus the shared machinery: option parsing and refusals, unit conversions, the
 * sandbox lifecycle, the process outcome, the in-sandbox exec wrapper and tree killer, files over
 * exec, error tables, provider calls with retries, and an in-process registry.
 */
export * from '../errors/index.js';
export * from '../spec/options.js';
export type * from '../spec/sandbox.js';
export type { SandboxCapabilities } from '../spec/sandbox-capabilities.js';
export { SandboxEmitter, type SandboxEvents, type SandboxWarning } from '../spec/events.js';
export * from '../streams/index.js';
export { runViaExec } from './run.js';
export { requireCapability } from './capability.js';
export { retryIdempotent } from './retry.js';
export {
  parseOptions,
  checkStringArgument,
  checkSandboxPath,
  checkSignal,
  parseTags,
  killSignals,
  maxSandboxPathBytes,
  type KillSignal,
} from './validate.js';
export { raceWithSignal } from './signals.js';
export { ExecFiles, checkFileMode, fileScripts, fileExit, parseEntries, type ExecCapable } from './exec-files.js';
export { signalFromExitCode, watchExecLimits } from './exec-limits.js';
export { loadOptionalPeer, type OptionalPeerOptions } from './optional-peer.js';
export {
  toArgv,
  parseExecCall,
  parseRunCall,
  portRequests,
  portNumbers,
  volumeMounts,
  refuseUnsupported,
  type PortRequest,
  type VolumeMount,
} from './options.js';
export { wholeSeconds, wholeMinutes, wholeGiB, warningsOf, type Converted } from './units.js';
export { setLongTimeout, maxTimerDelayMs, type LongTimer } from './timers.js';
export { SandboxLifecycle, announceCreated, type SandboxEnded, type LifecycleMember, type SandboxLifecycleOptions } from './lifecycle.js';
export { ProcessOutcome, newExecId, execTimeoutError, type ProcessOutcomeOptions } from './process.js';
export {
  execWrapperScript,
  wrapArgv,
  wrapperExit,
  execMarkerVariable,
  readStartMarker,
  parseStartReport,
  parseStartLine,
  killMarkedTreeScript,
  killMarkedTreeArgv,
  type StartReport,
} from './exec-wrapper.js';
export { processesMarkedWith, signalMarkedProcesses, canScanHostProcesses } from './host-processes.js';
export {
  wrapPtyArgv,
  resizeArgv,
  ptyEnvironment,
  checkPtySize,
  shellQuote,
  defaultPtyTerm,
  ptyToolsExit,
  ptyOuterScript,
  type PtyWrapOptions,
} from './pty.js';
export { defineFiles, normaliseWriteData, type NativeFiles, type DefineFilesOptions, type WriteData } from './files.js';
export { fromHttpStatus, fromGrpcStatus, fromConnectionError, errorCode, grpcStatus, type ErrorContext } from './errors.js';
export { providerCall, type ProviderCallContext, type ProviderCallOptions } from './calls.js';
export { SandboxRegistry, matchesTags, type RegistryEntry } from './registry.js';
export {
  entrypointOutput,
  entrypointBufferBytes,
  entrypointEndGraceMs,
  closedReadable,
  discardingWritable,
  entrypointStdio,
  startExecEntrypoint,
  withStartSignal,
  drainEntrypointOutput,
  type EntrypointOutputOptions,
  type EntrypointStdio,
  type EntrypointStdioOptions,
} from './entrypoint.js';
export {
  watchViaExec,
  InotifyTranslator,
  InotifyRecordSplitter,
  splitInotifyRecords,
  watcherScript,
  inotifyFormat,
  inotifyEvents,
  watcherMissingExit,
  type InotifyRecord,
  type Translated,
  type TranslatorOptions,
  type WatchEnd,
  type WatchHost,
  type WatchViaExecOptions,
} from './watch.js';
export { PumpedOutput, pumpedOutputBufferBytes, type PumpedOutputOptions } from './pumped-output.js';
export { PushedFileWatch, maxQueuedWatchEvents, type PushedFileWatchOptions, type PushedWatchOutcome } from './watch-queue.js';
export { egressProxyEnv, egressProxyPort, egressProxyWarning, withoutProxyVariables } from './egress-env.js';
export { systemEgressNetwork, type EgressNetwork } from './egress-network.js';
export {
  compileEgressPolicy,
  nameAllowed,
  decideAddress,
  parseEgressHost,
  normalizeAddress,
  type EgressPolicy,
  type EgressVerdict,
  type EgressHost,
} from './egress-policy.js';
export { startEgressProxy, type EgressAddress, type EgressProxy, type EgressProxyOptions, type EgressListen } from './egress-proxy.js';
export { listenInNamespace, type NamespaceListenerOptions } from './egress-listener.js';
