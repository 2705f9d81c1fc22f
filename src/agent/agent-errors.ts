import { hasErrorCode, SandboxError, type SandboxErrorCode, type SandboxErrorOptions } from '../errors/sandbox-error.js';

/**
 * Why an agent operation failed.
 * - `process-exited`: the `claude` process ended while a turn or `start` was waiting on it.
 * - `sandbox-ended`: the sandbox died under the process (terminated, timed out, crashed).
 * - `closed`: the session was closed (or `close()` ran) before the turn finished.
 * - `cli-not-found` / `cli-install-failed` / `cli-version-mismatch`: `ensureClaudeCode`.
 * - `cli-install-unsupported`: `ensureClaudeCode` cannot put the CLI into this sandbox (its
 *   provider or platform); the message names the image recipe (`claudeCodeImage()`).
 * - `api-error`: the model API answered with an error (`apiErrorStatus` says which).
 * - `max-turns` / `max-budget`: the turn hit `maxTurns` / `maxBudgetUsd`.
 * - `interrupted`: the turn was interrupted (`interrupt()`, its signal, or its timeout).
 * - `execution-error`: any other error result of the CLI (`errors` of the result say why).
 * - `session-not-found`: `resume` found no such session in the store.
 * - `protocol`: the CLI said something the session could not understand.
 */
export type AgentErrorReason =
  | 'process-exited'
  | 'sandbox-ended'
  | 'closed'
  | 'cli-not-found'
  | 'cli-install-failed'
  | 'cli-version-mismatch'
  | 'cli-install-unsupported'
  | 'api-error'
  | 'max-turns'
  | 'max-budget'
  | 'interrupted'
  | 'execution-error'
  | 'session-not-found'
  | 'protocol';

/** The `SandboxErrorCode` of every agent error. The root union gains `'agent'` with this class. */
export const agentErrorCode: SandboxErrorCode = 'agent';

/**
 * An `AgentSession` or `ensureClaudeCode` failure. `reason` says which; process failures carry
 * the exit code and the last lines of the CLI's stderr, so a crash is diagnosable from the error.
 */
export class AgentSessionError extends SandboxError {
  readonly reason: AgentErrorReason;
  /** Exit code of the `claude` process, when it exited. 128 + n after signal n. */
  readonly exitCode: number | undefined;
  /** Last lines of the process's stderr (at most ~4 KiB), when there were any. */
  readonly stderrTail: string | undefined;
  /** HTTP status of the model API error, for `api-error`. */
  readonly apiErrorStatus: number | undefined;
  /** Session id the error belongs to, when known. */
  readonly sessionId: string | undefined;

  constructor(
    options: SandboxErrorOptions & {
      reason: AgentErrorReason;
      exitCode?: number;
      stderrTail?: string;
      apiErrorStatus?: number;
      sessionId?: string;
    },
  ) {
    super(agentErrorCode, options);
    this.name = 'AgentSessionError';
    this.reason = options.reason;
    this.exitCode = options.exitCode;
    this.stderrTail = options.stderrTail;
    this.apiErrorStatus = options.apiErrorStatus;
    this.sessionId = options.sessionId;
  }

  static override isInstance(error: unknown): error is AgentSessionError {
    return hasErrorCode(error, agentErrorCode);
  }
}
