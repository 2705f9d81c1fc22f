import { loadOptionalPeer } from '../kit/optional-peer.js';

/** The `@opentelemetry/api` module, as the telemetry wrappers use it. */
export type OpenTelemetryApi = typeof import('@opentelemetry/api');

/** The package the wrappers need, and the line that installs a supported version. */
export const openTelemetryPackage = '@opentelemetry/api';
export const openTelemetryInstallLine = 'npm install @opentelemetry/api@^1.9.0';

/**
 * How the API module is imported. A seam, not public API: the tests swap `load` to see what a
 * user without the package gets, without uninstalling it.
 */
export const openTelemetryLoader: { load: () => Promise<OpenTelemetryApi> } = {
  load: () => import('@opentelemetry/api'),
};

/**
 * Imports `@opentelemetry/api` on first need, so that `sandport/telemetry` loads without it.
 * Throws `SandboxCapabilityUnsupportedError` (capability `peer:@opentelemetry/api`) naming the
 * package and its install line when it is not installed, `SandboxProviderError` when it is
 * installed but fails to load.
 */
export async function loadOpenTelemetry(): Promise<OpenTelemetryApi> {
  return loadOptionalPeer<OpenTelemetryApi>(openTelemetryPackage, {
    neededBy: 'sandport/telemetry',
    installLine: openTelemetryInstallLine,
    load: () => openTelemetryLoader.load(),
  });
}
