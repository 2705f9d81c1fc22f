/**
 * The HTTP plumbing of the Vercel emulator: one route table, path patterns with `:name`
 * segments, JSON bodies, NDJSON streams with backpressure, and Vercel's error body
 * `{ error: { code, message } }` (the SDK surfaces `error.message` in its `APIError` and reads
 * `error.code` to tell `sandbox_stopped`, `snapshot_not_found`, … apart). An unknown route is a
 * 501 naming the method and path, so a gap shows as a failing call, never a hang.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request as the handlers see it. */
export interface VercelRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  /** Path parameters of the matched pattern (`/v2/sandboxes/:name` gives `name`). */
  readonly params: Readonly<Record<string, string>>;
  /** The raw request, for streamed bodies. Read the body either through it or `body()`, once. */
  readonly raw: IncomingMessage;
  /** The whole body (bounded by `maxBodyBytes`). */
  body(): Promise<Buffer>;
  /** The body parsed as a JSON object (`{}` when empty); anything else is a 400. */
  json(): Promise<Record<string, unknown>>;
}

export type VercelHandler = (request: VercelRequest, response: ServerResponse) => Promise<void>;

export interface VercelRoute {
  readonly method: string;
  /** `/v2/sandboxes/sessions/:sessionId/cmd`. */
  readonly pattern: string;
  readonly handle: VercelHandler;
}

/** An error a handler throws: the status and Vercel's `{ error: { code, message } }` body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A 400 naming the request field at fault. */
export function badRequest(field: string, why: string): HttpError {
  return new HttpError(400, 'bad_request', `${field}: ${why}`);
}

/**
 * A 501 for a feature of Vercel the emulator does not reproduce, naming the call and the field.
 * (The SDK retries 5xx twice before it gives up, so such a call takes a second or two to fail.)
 */
export function notEmulated(call: string, why: string): HttpError {
  return new HttpError(501, 'not_implemented', `The Vercel emulator does not implement ${call}: ${why}`);
}

/** The most a JSON body may be (file writes stream through `raw`). */
export const maxBodyBytes = 16 * 1024 * 1024;

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

export function sendError(response: ServerResponse, status: number, code: string, message: string): void {
  if (response.headersSent) {
    response.destroy(new Error(message));
    return;
  }
  sendJson(response, status, { error: { code, message } });
}

/**
 * An NDJSON response (`application/x-ndjson`, the exact content type the SDK checks) whose
 * `write` waits while the client is not reading, so a command's output stalls in the sandbox
 * rather than in the emulator's memory. `write` resolves false once the client went away.
 */
export class NdjsonWriter {
  private closed = false;

  constructor(private readonly response: ServerResponse) {
    response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    response.flushHeaders();
    response.on('close', () => {
      this.closed = true;
    });
  }

  /** Whether the client went away. */
  get gone(): boolean {
    return this.closed;
  }

  async write(value: unknown): Promise<boolean> {
    if (this.closed) return false;
    if (this.response.write(`${JSON.stringify(value)}\n`)) return true;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.response.off('drain', done);
        this.response.off('close', done);
        resolve();
      };
      this.response.on('drain', done);
      this.response.on('close', done);
    });
    return !this.closed;
  }

  end(): void {
    if (!this.closed) this.response.end();
  }
}

function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
  const wanted = pattern.split('/');
  const actual = path.split('/');
  if (wanted.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (let index = 0; index < wanted.length; index++) {
    const segment = wanted[index]!;
    const value = actual[index]!;
    if (segment.startsWith(':')) {
      if (value === '') return undefined;
      params[segment.slice(1)] = decodeURIComponent(value);
    } else if (segment !== value) return undefined;
  }
  return params;
}

async function readBody(raw: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBodyBytes) throw new HttpError(413, 'payload_too_large', `request body over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export interface RouterOptions {
  /** Runs before every handler (auth); throws an `HttpError` to refuse. */
  check?: (request: VercelRequest) => void;
  /** Counted per `METHOD pattern` on every call, for tests and the benchmark. */
  calls: Map<string, number>;
}

/** A request listener serving `routes`; anything else is a 501 naming the call. */
export function createRouter(routes: readonly VercelRoute[], options: RouterOptions) {
  return (raw: IncomingMessage, response: ServerResponse): void => {
    const url = new URL(raw.url ?? '/', 'http://emulator');
    const method = raw.method ?? 'GET';
    let matched: { route: VercelRoute; params: Record<string, string> } | undefined;
    for (const route of routes) {
      if (route.method !== method) continue;
      const params = matchPattern(route.pattern, url.pathname);
      if (params) {
        matched = { route, params };
        break;
      }
    }
    if (!matched) {
      raw.resume();
      sendError(response, 501, 'not_implemented', `The Vercel emulator does not implement ${method} ${url.pathname}`);
      return;
    }
    const { route, params } = matched;
    const key = `${route.method} ${route.pattern}`;
    options.calls.set(key, (options.calls.get(key) ?? 0) + 1);
    let bodyRead: Promise<Buffer> | undefined;
    const request: VercelRequest = {
      method,
      url,
      headers: raw.headers,
      params,
      raw,
      body: () => (bodyRead ??= readBody(raw)),
      async json() {
        const body = await request.body();
        if (body.byteLength === 0) return {};
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpError(400, 'bad_request', 'request body is not valid JSON');
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          throw new HttpError(400, 'bad_request', 'request body must be a JSON object');
        }
        return parsed as Record<string, unknown>;
      },
    };
    void (async () => {
      options.check?.(request);
      await route.handle(request, response);
    })().catch((error: unknown) => {
      if (!(error instanceof HttpError)) console.error(`[vercel emulator] ${method} ${url.pathname} failed:`, error);
      if (error instanceof HttpError) return sendError(response, error.status, error.code, error.message);
      sendError(response, 500, 'internal_error', error instanceof Error ? error.message : String(error));
    });
  };
}

// ---- small readers of request fields, each a 400 naming the field when malformed ----

export function optionalString(body: Record<string, unknown>, field: string, prefix = ''): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw badRequest(`${prefix}${field}`, 'must be a string');
  return value;
}

export function optionalNumber(body: Record<string, unknown>, field: string, prefix = ''): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw badRequest(`${prefix}${field}`, 'must be a number');
  return value;
}

export function optionalBoolean(body: Record<string, unknown>, field: string, prefix = ''): boolean | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw badRequest(`${prefix}${field}`, 'must be a boolean');
  return value;
}

export function optionalStringRecord(body: Record<string, unknown>, field: string, prefix = ''): Record<string, string> | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${prefix}${field}`, 'must be an object of strings');
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw badRequest(`${prefix}${field}.${key}`, 'must be a string');
  }
  return { ...(value as Record<string, string>) };
}

export function optionalObject(body: Record<string, unknown>, field: string, prefix = ''): Record<string, unknown> | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${prefix}${field}`, 'must be an object');
  return value as Record<string, unknown>;
}

export function optionalStringArray(body: Record<string, unknown>, field: string, prefix = ''): string[] | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw badRequest(`${prefix}${field}`, 'must be an array of strings');
  }
  return [...(value as string[])];
}
