/**
 * The HTTP plumbing of the Cloudflare bridge emulator: a route table with `:name` segments and a
 * trailing `*`, bodies read whole (with a byte limit), and the bridge's error body
 * `{ "error": string, "code": string }`. A call the emulator does not serve is a 404, as the
 * bridge's router answers for an unknown `/v1` path, with a body that names the call, so that a
 * gap shows as a failing call, never a hang.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request as the handlers see it. */
export interface BridgeRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  /** Path parameters of the matched pattern, percent-decoded (`*`: the rest of the path, raw). */
  readonly params: Readonly<Record<string, string>>;
  readonly raw: IncomingMessage;
  /** The whole body. Read once, through this or `raw`. */
  body(): Promise<Buffer>;
}

export type BridgeHandler = (request: BridgeRequest, response: ServerResponse) => Promise<void>;

export interface BridgeRoute {
  readonly method: string;
  /** `/v1/sandbox/:id/exec`; a final segment `*` matches the rest of the path (empty after a trailing slash). */
  readonly pattern: string;
  readonly handle: BridgeHandler;
}

/** An error a handler throws: the status and the bridge's `{ error, code }` body. */
export class BridgeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** `{ error, code }` with status 400 and code `invalid_request`, the bridge's usual refusal. */
export function invalidRequest(message: string, status = 400): BridgeError {
  return new BridgeError(status, message, 'invalid_request');
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** The bridge's error body; once a stream has started, the connection is cut instead. */
export function sendBridgeError(response: ServerResponse, status: number, error: string, code: string): void {
  if (response.headersSent) return void response.destroy(new Error(error));
  sendJson(response, status, { error, code });
}

export function sendEmpty(response: ServerResponse, status: number): void {
  response.writeHead(status);
  response.end();
}

function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
  const wanted = pattern.split('/');
  const actual = path.split('/');
  const params: Record<string, string> = {};
  for (let index = 0; index < wanted.length; index++) {
    const segment = wanted[index]!;
    if (segment === '*') {
      // `/file/` matches with an empty rest (the route answers 400 for it); `/file` does not.
      if (actual.length <= index) return undefined;
      params['*'] = actual.slice(index).join('/');
      return params;
    }
    const value = actual[index];
    if (value === undefined) return undefined;
    if (segment.startsWith(':')) {
      try {
        params[segment.slice(1)] = decodeURIComponent(value);
      } catch {
        return undefined;
      }
    } else if (segment !== value) return undefined;
  }
  return wanted.length === actual.length ? params : undefined;
}

/**
 * Reads a whole body. Past `limit` bytes the rest is read and counted but not kept, so that the
 * caller can say how large the body was (the bridge's 413 message does).
 */
export async function readBody(raw: IncomingMessage, limit: number): Promise<{ bytes: Buffer; total: number }> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total <= limit) chunks.push(chunk);
  }
  return { bytes: total <= limit ? Buffer.concat(chunks) : Buffer.alloc(0), total };
}

/** Bodies of JSON routes are small; this bounds what a confused client can make the emulator hold. */
export const maxJsonBodyBytes = 4 * 1024 * 1024;

/** The body parsed as JSON; malformed (or empty) is the bridge's 400 `Invalid JSON body`. */
export async function jsonBody(request: BridgeRequest): Promise<unknown> {
  const text = (await request.body()).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalidRequest('Invalid JSON body');
  }
}

export interface RouterOptions {
  /** For the 404 text: which emulator and bridge version. */
  label: string;
  /** Runs before the route is matched (id format, auth); throws a `BridgeError` to refuse. */
  before?: (request: BridgeRequest) => void | Promise<void>;
  /** Runs after a route matched, before its handler (the container allocation of `/v1/sandbox/:id/*`). */
  matched?: (request: BridgeRequest, route: BridgeRoute) => void | Promise<void>;
  /** Served for paths that are neither routes nor under `/v1` (the template Worker's own fetch). */
  fallback?: (request: BridgeRequest, response: ServerResponse) => boolean;
  /** Call counts per `METHOD pattern`. */
  calls: Map<string, number>;
}

/** A request listener serving `routes`. */
export function createRouter(routes: readonly BridgeRoute[], options: RouterOptions) {
  return (raw: IncomingMessage, response: ServerResponse): void => {
    const url = new URL(raw.url ?? '/', 'http://bridge');
    const method = raw.method ?? 'GET';
    let bodyRead: Promise<Buffer> | undefined;
    const base = {
      method,
      url,
      headers: raw.headers,
      raw,
      body: () =>
        (bodyRead ??= readBody(raw, maxJsonBodyBytes).then(({ bytes, total }) => {
          if (total > maxJsonBodyBytes) throw invalidRequest(`request body over ${maxJsonBodyBytes} bytes`);
          return bytes;
        })),
    };
    void (async () => {
      await options.before?.({ ...base, params: {} });
      let matched: { route: BridgeRoute; params: Record<string, string> } | undefined;
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
        if (options.fallback?.({ ...base, params: {} }, response)) return;
        const text = `404 Not Found: ${options.label} does not serve ${method} ${url.pathname}`;
        response.writeHead(404, { 'content-type': 'text/plain; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
        response.end(text);
        return;
      }
      const { route, params } = matched;
      const key = `${route.method} ${route.pattern}`;
      options.calls.set(key, (options.calls.get(key) ?? 0) + 1);
      const request: BridgeRequest = { ...base, params };
      await options.matched?.(request, route);
      await route.handle(request, response);
    })().catch((error: unknown) => {
      raw.resume();
      // The client went away mid-request (an aborted upload or exec): nobody is left to answer.
      if (raw.destroyed && (error as { code?: unknown } | undefined)?.code === 'ECONNRESET') return void response.destroy();
      if (error instanceof BridgeError) return sendBridgeError(response, error.status, error.message, error.code);
      console.error(`[cloudflare bridge emulator] ${method} ${url.pathname} failed:`, error);
      // Hono answers an uncaught handler error with a plain 500.
      if (response.headersSent) return void response.destroy();
      response.writeHead(500, { 'content-type': 'text/plain; charset=UTF-8' });
      response.end('Internal Server Error');
    });
  };
}
