import { AgentSessionError, type AgentErrorReason } from './agent-errors.js';
import type { AgentResultMessage, AgentTurnResult, AgentUsage } from './agent-options.js';
import type { SpawnOutcome } from './sandbox-spawn.js';
import { SandboxSpawnedProcess } from './sandbox-spawn.js';

/** What a session has spent so far. Plain data: `finishTurn` returns the next one. */
export interface TurnLedger {
  /** The CLI process's own running total at its last result, in US dollars. */
  readonly lastReportedCostUsd: number;
  /** The session's total, stored history's included, in US dollars. */
  readonly totalCostUsd: number;
  /** Tokens of every turn this host process saw. */
  readonly usage: AgentUsage;
}

/** The ledger of a session that has spent `totalCostUsd` before this process (a resumed one), or nothing. */
export function startLedger(totalCostUsd = 0): TurnLedger {
  return {
    lastReportedCostUsd: 0,
    totalCostUsd,
    usage: { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
  };
}

/**
 * The caller's view of a result message, and the ledger after it. The CLI reports its cost as a
 * running total of its process; a resumed process may start again from zero, so a total below
 * the last one counts whole.
 */
export function finishTurn(
  ledger: TurnLedger,
  message: AgentResultMessage,
  provider: string,
): { result: AgentTurnResult; ledger: TurnLedger } {
  const reported = message.total_cost_usd ?? 0;
  const costUsd = reported >= ledger.lastReportedCostUsd ? reported - ledger.lastReportedCostUsd : reported;
  const totalCostUsd = ledger.totalCostUsd + costUsd;
  const usage: AgentUsage = {
    inputTokens: message.usage?.input_tokens ?? 0,
    outputTokens: message.usage?.output_tokens ?? 0,
    cacheReadInputTokens: message.usage?.cache_read_input_tokens ?? 0,
    cacheCreationInputTokens: message.usage?.cache_creation_input_tokens ?? 0,
  };
  const cumulative = { ...ledger.usage };
  for (const key of Object.keys(usage) as Array<keyof AgentUsage>) cumulative[key] += usage[key];
  const result: AgentTurnResult = {
    sessionId: message.session_id,
    text: 'result' in message ? message.result : (message.errors ?? []).join('\n'),
    isError: message.is_error,
    error: resultError(message, provider),
    numTurns: message.num_turns,
    durationMs: message.duration_ms,
    costUsd,
    totalCostUsd,
    usage,
    permissionDenials: (message.permission_denials ?? []).map((denial) => ({
      toolName: denial.tool_name,
      toolUseId: denial.tool_use_id,
      toolInput: denial.tool_input,
    })),
    message,
  };
  return { result, ledger: { lastReportedCostUsd: reported, totalCostUsd, usage: cumulative } };
}

/** The typed error of an error result, or `undefined` for a successful turn. */
export function resultError(message: AgentResultMessage, provider: string): AgentSessionError | undefined {
  if (!message.is_error) return undefined;
  const record = message as AgentResultMessage & {
    api_error_status?: number | null;
    terminal_reason?: string;
    errors?: string[];
    result?: string;
  };
  let reason: AgentErrorReason;
  if (message.subtype === 'error_max_turns') reason = 'max-turns';
  else if (message.subtype === 'error_max_budget_usd') reason = 'max-budget';
  else if (
    record.terminal_reason === 'aborted_streaming' ||
    record.terminal_reason === 'aborted_tools' ||
    (record.errors ?? []).some((text) => /interrupt/i.test(text))
  )
    reason = 'interrupted';
  // The CLI reports a failed API call as a "successful" run whose result is the error.
  else if (message.subtype === 'success') reason = 'api-error';
  else reason = 'execution-error';
  const detail = record.result ?? (record.errors ?? []).join('; ');
  return new AgentSessionError({
    reason,
    message: detail ? `The turn ended with ${reason}: ${detail}` : `The turn ended with ${reason}`,
    apiErrorStatus: record.api_error_status ?? undefined,
    retryable: reason === 'api-error' && (record.api_error_status === 429 || (record.api_error_status ?? 0) >= 500),
    sessionId: message.session_id,
    provider,
  });
}

/** What is known when the CLI's message stream ended. */
export interface ExitContext {
  /** How the process ended, when it ended in time. */
  outcome: SpawnOutcome | undefined;
  /** What the message stream threw, if it threw. */
  failure: unknown;
  /** The CLI's stderr tail, if it wrote any. */
  stderrTail: string | undefined;
  /** `close` was called: a plain end is expected. */
  closing: boolean;
  sessionId: string | undefined;
  provider: string;
}

/** Why the CLI is gone: the sandbox died under it, the session was closed, or the process ended. */
export function exitError(context: ExitContext): AgentSessionError {
  const { outcome, stderrTail, sessionId, provider } = context;
  if (outcome?.error !== undefined && SandboxSpawnedProcess.isSandboxGone(outcome.error)) {
    return new AgentSessionError({
      reason: 'sandbox-ended',
      message: `The sandbox ended under the CLI: ${(outcome.error as Error).message}`,
      cause: outcome.error,
      stderrTail,
      sessionId,
      provider,
    });
  }
  if (context.closing && (outcome === undefined || outcome.error === undefined)) return closedError(sessionId, provider);
  const exitCode = outcome?.exitCode;
  const signal = outcome?.signal;
  const how = exitCode !== undefined ? `with exit code ${exitCode}` : signal ? `by ${signal}` : 'unexpectedly';
  return new AgentSessionError({
    reason: 'process-exited',
    message: `The claude process ended ${how}${stderrTail ? `: ${lastLines(stderrTail, 5)}` : ''}`,
    cause: outcome?.error ?? context.failure,
    exitCode,
    stderrTail,
    sessionId,
    provider,
  });
}

export function closedError(sessionId: string | undefined, provider: string): AgentSessionError {
  return new AgentSessionError({ reason: 'closed', message: 'The agent session was closed', sessionId, provider });
}

function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join(' | ');
}
