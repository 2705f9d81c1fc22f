/**
 * A command's log stream read as the caller pulls it.
 *
 * Why not `command.logs()`: the SDK (3.5.0) pipes the HTTP body into its NDJSON parser without
 * waiting for the parser to take it (its pipe ignores `write()`'s return), so output a command
 * writes faster than our caller reads piles up in host memory. This reader asks for the next
 * piece of the body only when the caller wants the next line, so the HTTP stream and then the
 * command itself wait on a slow reader.
 *
 * It still goes through the SDK for the request (its base URL, credentials, retries and agent):
 * the SDK's API client is protected at the type level, so it is reached by shape, and when that
 * shape is not there (another SDK version) the SDK's own `logs()` is used as before.
 */
import type { Command as VercelCommand } from '@vercel/sandbox';
import { z } from 'zod';

/** One output line of a command. */
export interface VercelLogLine {
  readonly stream: 'stdout' | 'stderr';
  readonly data: string;
}

/** The lines of Vercel's NDJSON log stream: output, or an error that ends the stream. */
const logLineSchema = z.discriminatedUnion('stream', [
  z.object({ stream: z.literal('stdout'), data: z.string() }),
  z.object({ stream: z.literal('stderr'), data: z.string() }),
  z.object({ stream: z.literal('error'), data: z.object({ code: z.string(), message: z.string() }) }),
]);

/**
 * An HTTP error of the log request, shaped as the SDK's `APIError` (a `response` and the parsed
 * `json` body), so that `mapVercelError` maps it as it maps the SDK's.
 */
export class VercelLogRequestError extends Error {
  override readonly name = 'APIError';
  constructor(
    message: string,
    readonly response: Response,
    readonly json: unknown,
  ) {
    super(message);
  }
}

/** An error line in the log stream, shaped as the SDK's `StreamError` (`code` and `sessionId`). */
export class VercelLogStreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    readonly code: string,
    message: string,
    readonly sessionId: string,
  ) {
    super(message);
  }
}

interface SdkApiClient {
  request(path: string, init: { method: string; signal?: AbortSignal }): Promise<Response>;
}

/** The SDK's API client and session id behind a `Command`, when this SDK version has them where 3.5.0 does. */
function internalsOf(command: VercelCommand): { client: SdkApiClient; sessionId: string } | undefined {
  const shaped = command as unknown as { _client?: unknown; sessionId?: unknown };
  const client = shaped._client as { request?: unknown } | null | undefined;
  if (!client || typeof client.request !== 'function' || typeof shaped.sessionId !== 'string') return undefined;
  return { client: client as SdkApiClient, sessionId: shaped.sessionId };
}

/**
 * Splits a byte stream into text lines, one read of the stream at a time: nothing is read before
 * the consumer asks for the next line.
 */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      rest += decoder.decode(next.value, { stream: true });
      let newline = rest.indexOf('\n');
      while (newline !== -1) {
        const line = rest.slice(0, newline);
        rest = rest.slice(newline + 1);
        if (line.trim() !== '') yield line;
        newline = rest.indexOf('\n');
      }
    }
    rest += decoder.decode();
    if (rest.trim() !== '') yield rest;
  } finally {
    // The consumer stopped early (or the read failed): the connection is let go.
    await reader.cancel().catch(() => undefined);
  }
}

/** Parses one NDJSON log line, or throws naming what was wrong with it. */
export function parseVercelLogLine(line: string, sessionId: string): VercelLogLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`Vercel's log stream sent a line that is not JSON: ${line.slice(0, 200)}`);
  }
  const parsed = logLineSchema.safeParse(value);
  if (!parsed.success) throw new Error(`Vercel's log stream sent a line of an unknown shape: ${line.slice(0, 200)}`);
  if (parsed.data.stream === 'error') throw new VercelLogStreamError(parsed.data.data.code, parsed.data.data.message, sessionId);
  return parsed.data;
}

/** The output lines of `command`, from its first, read as they are asked for; ends when the command's output does. */
export async function* vercelLogLines(command: VercelCommand, signal: AbortSignal): AsyncGenerator<VercelLogLine> {
  const internals = internalsOf(command);
  if (!internals) {
    for await (const line of command.logs({ signal })) {
      if (line.stream === 'stdout' || line.stream === 'stderr') yield line;
    }
    return;
  }
  const { client, sessionId } = internals;
  const path = `/v2/sandboxes/sessions/${encodeURIComponent(sessionId)}/cmd/${encodeURIComponent(command.cmdId)}/logs`;
  const response = await client.request(path, { method: 'GET', signal });
  if (!response.ok) {
    const text = await response.text().catch(() => '');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    throw new VercelLogRequestError(`Reading the logs of command ${command.cmdId} failed: HTTP ${response.status}`, response, json);
  }
  if (response.headers.get('content-type') !== 'application/x-ndjson' || response.body === null) {
    await response.body?.cancel().catch(() => undefined);
    throw new VercelLogRequestError(
      `Reading the logs of command ${command.cmdId}: expected an NDJSON stream, got ${response.headers.get('content-type') ?? 'no content type'}`,
      response,
      undefined,
    );
  }
  for await (const line of ndjsonLines(response.body)) yield parseVercelLogLine(line, sessionId);
}
