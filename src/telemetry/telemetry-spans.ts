import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { z } from 'zod';
import { SandboxError } from '../errors/index.js';
import { parseOptions } from '../kit/validate.js';
import { loadOpenTelemetry, type OpenTelemetryApi } from './otel-peer.js';

/** Options of `instrumentProvider` and `instrumentAgentSession`. */
export interface TelemetryOptions {
  /**
   * The tracer spans are made with. @default the global tracer provider's tracer `'sandport'`
   * (`trace.getTracer('sandport')`), so registering an SDK is all an app has to do.
   */
  readonly tracer?: Tracer;
  /**
   * Record the whole command of `exec` and `run` as `process.command_line`. Off by default:
   * arguments can carry secrets (a token on a `curl` line), so only the program name
   * (`process.executable.name`) of an argv command is recorded. @default false
   */
  readonly recordCommandLine?: boolean;
}

const telemetryOptionsSchema = z
  .object({
    tracer: z
      .custom<Tracer>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as Tracer).startSpan === 'function' &&
          typeof (value as Tracer).startActiveSpan === 'function',
        { message: 'must be an OpenTelemetry Tracer (with startSpan and startActiveSpan)' },
      )
      .optional(),
    recordCommandLine: z.boolean().optional(),
  })
  .strict();

/** What every wrapped call needs: the API module, the tracer, and which spans are ours. */
export interface Telemetry {
  readonly api: OpenTelemetryApi;
  readonly tracer: Tracer;
  readonly recordCommandLine: boolean;
  /** Spans this wrapper made: provider events become span events on these only, never on an app's span. */
  readonly spans: WeakSet<Span>;
}

/** Validates the options (before loading anything) and loads the API. */
export async function setUpTelemetry(options: TelemetryOptions | undefined): Promise<Telemetry> {
  const parsed = parseOptions(telemetryOptionsSchema, options, { what: 'telemetry options' });
  const api = await loadOpenTelemetry();
  return {
    api,
    tracer: parsed.tracer ?? api.trace.getTracer('sandport'),
    recordCommandLine: parsed.recordCommandLine ?? false,
    spans: new WeakSet(),
  };
}

/** Starts a client span under the active context; `context` is the one to run the call in. */
export function startSpan(telemetry: Telemetry, name: string, attributes: Attributes): { span: Span; context: Context } {
  const { api, tracer } = telemetry;
  const parent = api.context.active();
  const span = tracer.startSpan(name, { kind: api.SpanKind.CLIENT, attributes }, parent);
  telemetry.spans.add(span);
  return { span, context: api.trace.setSpan(parent, span) };
}

/**
 * Runs `call` in a span of its own: the span ends when the call settles, with the attributes
 * `describe` reads from the value, or with the error recorded. The error is rethrown as is.
 */
export async function inSpan<T>(
  telemetry: Telemetry,
  name: string,
  attributes: Attributes,
  call: () => Promise<T>,
  describe?: (value: T) => Attributes,
): Promise<T> {
  const { span, context } = startSpan(telemetry, name, attributes);
  try {
    const value = await telemetry.api.context.with(context, call);
    if (describe) span.setAttributes(describe(value));
    return value;
  } catch (error) {
    recordError(telemetry, span, error);
    throw error;
  } finally {
    span.end();
  }
}

/**
 * Marks a span failed: status ERROR with the message, the exception as a span event, and
 * `error.type` (the `SandboxError` code, `'invalid_argument'` say, or the error's name).
 */
export function recordError(telemetry: Telemetry, span: Span, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error) span.recordException(error);
  span.setAttribute('error.type', errorType(error));
  span.setStatus({ code: telemetry.api.SpanStatusCode.ERROR, message });
}

function errorType(error: unknown): string {
  if (SandboxError.isInstance(error)) return error.code;
  if (error instanceof Error) return error.name;
  return '_OTHER';
}
