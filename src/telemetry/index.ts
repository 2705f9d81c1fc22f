/**
 * `sandport/telemetry`: OpenTelemetry spans for sandboxes and agent turns. Needs the optional
 * peer `@opentelemetry/api` (1.x), loaded when a wrapper is made; importing this module never
 * needs it. Spans are recorded by whatever SDK the app registers (or the `tracer` it passes).
 *
 * @example
 * const provider = await instrumentProvider(createLocalSandboxProvider());
 * await using sandbox = await provider.create(); // a `sandport.create` span
 * await sandbox.run('echo hi');                  // a `sandport.run` span with the exit code
 */
export { instrumentProvider } from './instrument-provider.js';
export { instrumentAgentSession } from './instrument-agent.js';
export type { TelemetryOptions } from './telemetry-spans.js';
