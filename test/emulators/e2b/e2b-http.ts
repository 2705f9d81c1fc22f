/**
 * The HTTP plumbing of the E2B emulator: a route table per server (control plane, envd), path
 * patterns with `:name` segments, JSON bodies, and E2B's error body. An unknown route is a 501
 * naming the method and path, so a gap shows as a failing call, never a hang.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request as the handlers see it. */
export interface E2bRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  /** Path parameters of the matched pattern (`/sandboxes/:sandboxID` gives `sandboxID`). */
  readonly params: Readonly<Record<string, string>>;
  /** The raw request, for streamed bodies. Read the body either through it or `body()`, once. */
  readonly raw: IncomingMessage;
  /** The whole body (bounded by `maxBodyBytes`). */
  body(): Promise<Buffer>;
  /** The body parsed as JSON (`{}` when empty); a malformed body is a 400. */
  json(): Promise<any>;
}

export type E2bHandler = (request: E2bRequest, response: ServerResponse) => Promise<void>;

export interface E2bRoute {
  readonly method: string;
  /** `/sandboxes/:sandboxID/timeout`; a segment `*` matches the rest of the path. */
  readonly pattern: string;
  readonly handle: E2bHandler;
}

/** An error a handler throws: the status and E2B's `{ code, message }` body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The most a JSON body may be (uploads stream through `raw`). */
export const maxBodyBytes = 16 * 1024 * 1024;

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

/** E2B's control-plane error body: `{ code, message }` with the HTTP status as `code`. */
export function sendError(response: ServerResponse, status: number, message: string): void {
  if (response.headersSent) {
    response.destroy(new Error(message));
    return;
  }
  sendJson(response, status, { code: status, message });
}

function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
  const wanted = pattern.split('/');
  const actual = path.split('/');
  const params: Record<string, string> = {};
  for (let index = 0; index < wanted.length; index++) {
    const segment = wanted[index]!;
    if (segment === '*') {
      params['*'] = actual.slice(index).join('/');
      return params;
    }
    const value = actual[index];
    if (value === undefined) return undefined;
    if (segment.startsWith(':')) params[segment.slice(1)] = decodeURIComponent(value);
    else if (segment !== value) return undefined;
  }
  return wanted.length === actual.length ? params : undefined;
}

async function readBody(raw: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBodyBytes) throw new HttpError(413, `request body over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export interface RouterOptions {
  /** Which server, for the 501 message: "control plane" or "envd". */
  label: string;
  /** Runs before every handler (auth); throws an `HttpError` to refuse. */
  check?: (request: E2bRequest, route: E2bRoute) => void | Promise<void>;
  /** Counted per `METHOD pattern` on every call, for tests and the benchmark. */
  calls: Map<string, number>;
  /** How a thrown error becomes a response. @default `sendError` with its status (500 for others) */
  onError?: (error: unknown, request: E2bRequest, response: ServerResponse) => void;
}

/** A request listener serving `routes`; anything else is a 501 naming the call. */
export function createRouter(routes: readonly E2bRoute[], options: RouterOptions) {
  return (raw: IncomingMessage, response: ServerResponse): void => {
    const url = new URL(raw.url ?? '/', 'http://emulator');
    const method = raw.method ?? 'GET';
    let matched: { route: E2bRoute; params: Record<string, string> } | undefined;
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
      sendError(response, 501, `The E2B emulator (${options.label}) does not implement ${method} ${url.pathname}`);
      return;
    }
    const { route, params } = matched;
    options.calls.set(`${route.method} ${route.pattern}`, (options.calls.get(`${route.method} ${route.pattern}`) ?? 0) + 1);
    let bodyRead: Promise<Buffer> | undefined;
    const request: E2bRequest = {
      method,
      url,
      headers: raw.headers,
      params,
      raw,
      body: () => (bodyRead ??= readBody(raw)),
      async json() {
        const body = await request.body();
        if (body.byteLength === 0) return {};
        try {
          return JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpError(400, 'request body is not valid JSON');
        }
      },
    };
    void (async () => {
      await options.check?.(request, route);
      await route.handle(request, response);
    })().catch((error: unknown) => {
      if (options.onError) return options.onError(error, request, response);
      if (!(error instanceof HttpError)) console.error(`[e2b emulator] ${method} ${url.pathname} failed:`, error);
      sendError(response, error instanceof HttpError ? error.status : 500, error instanceof Error ? error.message : String(error));
    });
  };
}
