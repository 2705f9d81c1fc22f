/** Result accounting (per-turn and cumulative cost and usage), result errors and exit diagnosis, against recorded CLI output. No I/O. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AgentResultMessage } from '../../src/agent/agent-options.js';
import { exitError, finishTurn, resultError, startLedger, type ExitContext, type TurnLedger } from '../../src/agent/agent-results.js';
import { AgentSessionError } from '../../src/agent/index.js';
import { SandboxNotFoundError } from '../../src/index.js';

/** The three result messages of test/agent/fixtures/three-turns.ndjson: text, Bash tool, API 401. */
const recordedResults = readFileSync(new URL('./fixtures/three-turns.ndjson', import.meta.url), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as { type: string })
  .filter((message): message is AgentResultMessage => message.type === 'result');

/** Runs `messages` through the accounting, as one session would. */
function account(messages: readonly AgentResultMessage[], ledger: TurnLedger = startLedger()) {
  const results = [];
  for (const message of messages) {
    const next = finishTurn(ledger, message, 'test');
    results.push(next.result);
    ledger = next.ledger;
  }
  return { results, ledger };
}

/** A result message: the recorded first one with `changes` (an `undefined` removes the field, as the CLI omits it). */
function result(changes: Record<string, unknown>): AgentResultMessage {
  const message: Record<string, unknown> = { ...recordedResults[0]!, ...changes };
  for (const [key, value] of Object.entries(changes)) if (value === undefined) delete message[key];
  return message as unknown as AgentResultMessage;
}

describe('finishTurn', () => {
  it('the fixture holds three results whose total cost is the CLI process’s running total', () => {
    expect(recordedResults.map((message) => [message.subtype, message.is_error, message.total_cost_usd])).toEqual([
      ['success', false, 0.00014000000000000001],
      ['success', false, 0.00042],
      ['success', true, 0.00042],
    ]);
  });

  it('turns the running total into per-turn cost, and sums usage per session', () => {
    const { results, ledger } = account(recordedResults);
    expect(results.map((turn) => turn.costUsd)).toEqual([expect.closeTo(0.00014, 12), expect.closeTo(0.00028, 12), 0]);
    expect(results.map((turn) => turn.totalCostUsd)).toEqual([
      expect.closeTo(0.00014, 12),
      expect.closeTo(0.00042, 12),
      expect.closeTo(0.00042, 12),
    ]);
    expect(results.map((turn) => turn.usage)).toEqual([
      { inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
      { inputTokens: 20, outputTokens: 10, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
      { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
    ]);
    expect(ledger).toEqual({
      lastReportedCostUsd: 0.00042,
      totalCostUsd: expect.closeTo(0.00042, 12),
      usage: { inputTokens: 30, outputTokens: 15, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
    });
  });

  it('maps the fields of each result, keeping the message itself', () => {
    const { results } = account(recordedResults);
    expect(results.map(({ text, isError, numTurns, sessionId }) => ({ text, isError, numTurns, sessionId }))).toEqual([
      { text: 'Echo: hello replay', isError: false, numTurns: 1, sessionId: '30f52f64-06d3-4d2f-9cdb-6e9ba4481452' },
      { text: 'Tool said: replayed', isError: false, numTurns: 2, sessionId: '30f52f64-06d3-4d2f-9cdb-6e9ba4481452' },
      {
        text: 'Failed to authenticate. API Error: 401 fake 401',
        isError: true,
        numTurns: 1,
        sessionId: '30f52f64-06d3-4d2f-9cdb-6e9ba4481452',
      },
    ]);
    expect(results.map((turn) => turn.durationMs)).toEqual([130, 133, 42]);
    expect(results.map((turn) => turn.message)).toEqual(recordedResults);
    expect(results.map((turn) => turn.error?.reason)).toEqual([undefined, undefined, 'api-error']);
    expect(results.every((turn) => turn.permissionDenials.length === 0)).toBe(true);
  });

  it('adds to a resumed session’s stored cost, and counts a process that restarts from zero whole', () => {
    const { results } = account([recordedResults[0]!, recordedResults[1]!], startLedger(1));
    expect(results.map((turn) => turn.totalCostUsd)).toEqual([expect.closeTo(1.00014, 12), expect.closeTo(1.00042, 12)]);
    // A second CLI process for the same session reports from zero again.
    const restarted = finishTurn(finishTurn(startLedger(), recordedResults[1]!, 'test').ledger, recordedResults[0]!, 'test');
    expect(restarted.result.costUsd).toBeCloseTo(0.00014, 12);
    expect(restarted.result.totalCostUsd).toBeCloseTo(0.00056, 12);
  });

  it('does not change the ledger it is given', () => {
    const ledger = startLedger();
    finishTurn(ledger, recordedResults[0]!, 'test');
    expect(ledger).toEqual(startLedger());
  });

  it('takes an error result’s text from its errors, and maps permission denials', () => {
    const denied = finishTurn(
      startLedger(),
      result({
        subtype: 'error_during_execution',
        is_error: true,
        result: undefined,
        errors: ['first', 'second'],
        permission_denials: [{ tool_name: 'Write', tool_use_id: 'toolu_1', tool_input: { file_path: '/x' } }],
      }),
      'test',
    ).result;
    expect(denied.text).toBe('first\nsecond');
    expect(denied.permissionDenials).toEqual([{ toolName: 'Write', toolUseId: 'toolu_1', toolInput: { file_path: '/x' } }]);
    const bare = finishTurn(startLedger(), result({ total_cost_usd: undefined, usage: undefined }), 'test').result;
    expect(bare.costUsd).toBe(0);
    expect(bare.usage).toEqual({ inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 });
  });
});

describe('resultError', () => {
  it('is undefined for a successful turn', () => {
    expect(resultError(recordedResults[0]!, 'test')).toBeUndefined();
  });

  it('types the recorded 401 as a non-retryable api-error', () => {
    const error = resultError(recordedResults[2]!, 'test')!;
    expect(error).toBeInstanceOf(AgentSessionError);
    expect(error).toMatchObject({ reason: 'api-error', apiErrorStatus: 401, retryable: false, provider: 'test' });
    expect(error.sessionId).toBe('30f52f64-06d3-4d2f-9cdb-6e9ba4481452');
    expect(error.message).toBe('The turn ended with api-error: Failed to authenticate. API Error: 401 fake 401');
  });

  const cases: Array<[string, Record<string, unknown>, { reason: string; retryable: boolean; apiErrorStatus?: number }]> = [
    ['a 500 is retryable', { api_error_status: 500 }, { reason: 'api-error', retryable: true, apiErrorStatus: 500 }],
    ['a 429 is retryable', { api_error_status: 429 }, { reason: 'api-error', retryable: true, apiErrorStatus: 429 }],
    ['a 400 is not', { api_error_status: 400 }, { reason: 'api-error', retryable: false, apiErrorStatus: 400 }],
    ['max turns', { subtype: 'error_max_turns', result: undefined, errors: [] }, { reason: 'max-turns', retryable: false }],
    ['max budget', { subtype: 'error_max_budget_usd', result: undefined, errors: [] }, { reason: 'max-budget', retryable: false }],
    [
      'an interrupt while streaming',
      { terminal_reason: 'aborted_streaming', api_error_status: null },
      { reason: 'interrupted', retryable: false },
    ],
    [
      'an interrupt during tools',
      { terminal_reason: 'aborted_tools', api_error_status: null },
      { reason: 'interrupted', retryable: false },
    ],
    [
      'an interrupt said in errors',
      { subtype: 'error_during_execution', result: undefined, errors: ['[Request interrupted by user]'] },
      { reason: 'interrupted', retryable: false },
    ],
    [
      'any other error result',
      { subtype: 'error_during_execution', result: undefined, errors: ['boom'] },
      { reason: 'execution-error', retryable: false },
    ],
  ];
  it.each(cases)('%s', (_name, changes, expected) => {
    expect(resultError(result({ is_error: true, ...changes }), 'test')).toMatchObject(expected);
  });

  it('says the errors in its message when there is no result text', () => {
    const error = resultError(
      result({ subtype: 'error_during_execution', is_error: true, result: undefined, errors: ['one', 'two'] }),
      'test',
    );
    expect(error?.message).toBe('The turn ended with execution-error: one; two');
    expect(resultError(result({ subtype: 'error_max_turns', is_error: true, result: undefined, errors: [] }), 'test')?.message).toBe(
      'The turn ended with max-turns',
    );
  });
});

describe('exitError', () => {
  const base: ExitContext = {
    outcome: undefined,
    failure: undefined,
    stderrTail: undefined,
    closing: false,
    sessionId: 's-1',
    provider: 'test',
  };

  it('a process that exited: its code and the last five lines of its stderr', () => {
    const stderrTail = ['1', '2', '3', '4', '5', 'FATAL'].join('\n');
    const error = exitError({ ...base, outcome: { exitCode: 3, signal: undefined, error: undefined }, stderrTail });
    expect(error).toMatchObject({ reason: 'process-exited', exitCode: 3, stderrTail, sessionId: 's-1', provider: 'test' });
    expect(error.message).toBe('The claude process ended with exit code 3: 2 | 3 | 4 | 5 | FATAL');
  });

  it('a process ended by a signal, or that did not say how, with the stream’s failure as cause', () => {
    expect(exitError({ ...base, outcome: { exitCode: undefined, signal: 'SIGKILL', error: undefined } }).message).toBe(
      'The claude process ended by SIGKILL',
    );
    const failure = new Error('stream broke');
    const error = exitError({ ...base, failure });
    expect(error.message).toBe('The claude process ended unexpectedly');
    expect(error.cause).toBe(failure);
  });

  it('a sandbox gone under the process is sandbox-ended, even while closing', () => {
    const gone = new SandboxNotFoundError({ message: 'sandbox sb-1 is gone', sandboxId: 'sb-1' });
    const error = exitError({ ...base, closing: true, outcome: { exitCode: undefined, signal: undefined, error: gone } });
    expect(error).toMatchObject({ reason: 'sandbox-ended', cause: gone });
    expect(error.message).toBe('The sandbox ended under the CLI: sandbox sb-1 is gone');
  });

  it('a process that ended while closing is closed, whatever its exit code', () => {
    expect(exitError({ ...base, closing: true, outcome: { exitCode: 143, signal: undefined, error: undefined } }).reason).toBe('closed');
    expect(exitError({ ...base, closing: true }).reason).toBe('closed');
  });
});
