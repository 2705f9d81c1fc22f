import type { Attributes, Span } from '@opentelemetry/api';
import type { AgentTurnResult } from '../agent/agent-options.js';
import type { AgentSession } from '../agent/agent-session.js';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { recordError, setUpTelemetry, startSpan, type Telemetry, type TelemetryOptions } from './telemetry-spans.js';

const instrumented = new WeakSet<AgentSession>();

/**
 * Makes every turn of `session` (each `send`) a `sandport.agent.turn` span, from the `send`
 * until the turn's result, child of the span active at the `send`. Attributes follow the
 * OpenTelemetry GenAI conventions where they fit: `gen_ai.operation.name` (`'invoke_agent'`),
 * `gen_ai.provider.name` (`'anthropic'`), `gen_ai.agent.name` (`'claude-code'`),
 * `gen_ai.conversation.id` (the session id), `gen_ai.usage.input_tokens` (all input tokens,
 * cache reads and writes included, as the conventions define it), `gen_ai.usage.output_tokens`,
 * `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`; and ours:
 * `sandport.agent.cost_usd` (this turn's estimated cost, US dollars), `sandport.agent.total_cost_usd`,
 * `sandport.agent.num_turns` (the model round trips of the turn), `sandport.agent.permission_denials`.
 * A turn that ends with an error result (interrupted, max turns, API error) has status ERROR
 * and `error.type` = its reason; a turn that rejects (the CLI died, timeout, closed) records the
 * error the same way.
 *
 * Returns the same session, whose `send` now traces. Idempotent: instrumenting a session twice
 * keeps one span per turn (the first call's tracer). Validates `session` and `options` first (`SandboxInvalidArgumentError`), then throws
 * `SandboxCapabilityUnsupportedError` (capability `peer:@opentelemetry/api`) when
 * `@opentelemetry/api` is not installed.
 */
export async function instrumentAgentSession(session: AgentSession, options?: TelemetryOptions): Promise<AgentSession> {
  if (typeof (session as Partial<AgentSession> | undefined)?.send !== 'function')
    throw new SandboxInvalidArgumentError({ message: 'session must be an AgentSession', argument: 'session' });
  const telemetry = await setUpTelemetry(options);
  if (instrumented.has(session)) return session;
  instrumented.add(session);
  const send = session.send.bind(session);
  session.send = (prompt, sendOptions) => {
    const { span, context } = startSpan(telemetry, 'sandport.agent.turn', turnAttributes(session));
    const turn = telemetry.api.context.with(context, () => send(prompt, sendOptions));
    turn.result.then(
      (result) => {
        span.setAttributes(resultAttributes(result));
        if (result.isError) {
          span.setAttribute('error.type', result.error?.reason ?? 'error');
          span.setStatus({ code: telemetry.api.SpanStatusCode.ERROR, message: result.error?.message ?? result.text });
        }
        span.end();
      },
      (error: unknown) => endFailed(telemetry, span, error),
    );
    return turn;
  };
  return session;
}

function endFailed(telemetry: Telemetry, span: Span, error: unknown): void {
  recordError(telemetry, span, error);
  span.end();
}

function turnAttributes(session: AgentSession): Attributes {
  return {
    'gen_ai.operation.name': 'invoke_agent',
    'gen_ai.provider.name': 'anthropic',
    'gen_ai.agent.name': 'claude-code',
    'sandport.provider': session.sandbox.provider,
    'sandport.sandbox.id': session.sandbox.id,
    ...(session.sessionId ? { 'gen_ai.conversation.id': session.sessionId } : {}),
  };
}

function resultAttributes(result: AgentTurnResult): Attributes {
  const { inputTokens, outputTokens, cacheReadInputTokens, cacheCreationInputTokens } = result.usage;
  return {
    'gen_ai.conversation.id': result.sessionId,
    'gen_ai.usage.input_tokens': inputTokens + cacheReadInputTokens + cacheCreationInputTokens,
    'gen_ai.usage.output_tokens': outputTokens,
    'gen_ai.usage.cache_read.input_tokens': cacheReadInputTokens,
    'gen_ai.usage.cache_creation.input_tokens': cacheCreationInputTokens,
    'sandport.agent.cost_usd': result.costUsd,
    'sandport.agent.total_cost_usd': result.totalCostUsd,
    'sandport.agent.num_turns': result.numTurns,
    'sandport.agent.permission_denials': result.permissionDenials.length,
  };
}
