/**
 * The HTTP plumbing of the Daytona emulator: one route table for the API (`/api/...`) and the
 * toolbox (`/toolbox/<sandboxId>/...`), path patterns with `:name` segments, JSON bodies, and
 * Daytona's two error bodies (the API's, and the daemon's with `source: 'DAYTONA_DAEMON'` and a
 * `code` the SDK turns into its specific error classes). An unknown route is a 501 naming the
 * method and path, so a gap shows as a failing call, never a hang.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SandboxNotFoundError } from '../../../src/kit/index.js';

/** A request as the handlers see it. */
export interface DaytonaRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  /** Path parameters of the matched pattern (`/sandbox/:idOrName` gives `idOrName`). */
  readonly params: Readonly<Record<string, string>>;
  /** The raw request, for streamed bodies. Read the body either through it or `body()`, once. */
  readonly raw: IncomingMessage;
  body(): Promise<Buffer>;
  /** The body parsed as JSON (`{}` when empty); a malformed body is a 400. */
  json(): Promise<any>;
}

export type DaytonaHandler = (request: DaytonaRequest, response: ServerResponse) => Promise<void>;

export interface DaytonaRoute {
  readonly method: string;
  /** `/sandbox/:idOrName/start`; a segment `*` matches the rest of the path. */
  readonly pattern: string;
  readonly handle: DaytonaHandler;
}

/** Which of Daytona's services answered: the API, or the daemon in the sandbox (toolbox). */
export type ErrorSource = 'api' | 'daemon';

/** An error a handler throws: the status, the message, and the daemon's error code when it has one. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The daemon's `code` (`FILE_NOT_FOUND`, `SESSION_ENDED`, …). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The most a JSON body may be (uploads stream through `raw`). */
export const maxBodyBytes = 16 * 1024 * 1024;

const reasons: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
};

const daemonCodes: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  410: 'GONE',
  422: 'UNPROCESSABLE_ENTITY',
  500: 'INTERNAL_SERVER_ERROR',
};

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

/** The error body of each service, as the SDK reads it (`message`, `statusCode`, `code`, `source`). */
export function errorBody(source: ErrorSource, status: number, message: string, request: { method: string; path: string }, code?: string) {
  const common = { statusCode: status, message, timestamp: new Date().toISOString(), path: request.path, method: request.method };
  if (source === 'api') return { ...common, error: reasons[status] ?? 'Error' };
  return { ...common, code: code ?? daemonCodes[status] ?? 'INTERNAL_SERVER_ERROR', source: 'DAYTONA_DAEMON' };
}

export function sendError(
  response: ServerResponse,
  source: ErrorSource,
  status: number,
  message: string,
  request: { method: string; path: string },
  code?: string,
): void {
  if (response.headersSent) {
    response.destroy(new Error(message));
    return;
  }
  sendJson(response, status, errorBody(source, status, message, request, code));
}

export function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
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

export async function readBody(raw: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBodyBytes) throw new HttpError(413, `request body over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export interface RouteTable {
  /** Which service, for the 501 message and the error body. */
  readonly source: ErrorSource;
  /** The path prefix the table's patterns are relative to (`/api`, `/toolbox/:sandboxId`). */
  readonly routes: readonly DaytonaRoute[];
  /** Runs before every handler (auth); throws an `HttpError` to refuse. */
  readonly check?: (request: DaytonaRequest) => void | Promise<void>;
}

/** Finds the route for a path relative to its table's prefix. */
export function findRoute(routes: readonly DaytonaRoute[], method: string, path: string) {
  for (const route of routes) {
    if (route.method !== method) continue;
    const params = matchPattern(route.pattern, path);
    if (params) return { route, params };
  }
  return undefined;
}

/** Wraps a raw request for a handler. */
export function wrapRequest(raw: IncomingMessage, url: URL, params: Record<string, string>): DaytonaRequest {
  let bodyRead: Promise<Buffer> | undefined;
  const request: DaytonaRequest = {
    method: raw.method ?? 'GET',
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
  return request;
}

/** Serves one request from a table: 501 naming the call when no route matches. */
export function serveFromTable(
  table: RouteTable,
  raw: IncomingMessage,
  response: ServerResponse,
  url: URL,
  relativePath: string,
  extraParams: Record<string, string>,
  calls: Map<string, number>,
): void {
  const method = raw.method ?? 'GET';
  const where = { method, path: url.pathname };
  const found = findRoute(table.routes, method, relativePath);
  if (!found) {
    raw.resume();
    const service = table.source === 'api' ? 'API' : 'toolbox';
    sendError(response, table.source, 501, `The Daytona emulator (${service}) does not implement ${method} ${url.pathname}`, where);
    return;
  }
  const key = `${method} ${table.source === 'api' ? '/api' : '/toolbox/:sandboxId'}${found.route.pattern}`;
  calls.set(key, (calls.get(key) ?? 0) + 1);
  const request = wrapRequest(raw, url, { ...extraParams, ...found.params });
  void (async () => {
    await table.check?.(request);
    await found.route.handle(request, response);
  })().catch((caught: unknown) => {
    // The local sandbox ended under the call (deleted or stopped meanwhile): Daytona's proxy
    // answers that the sandbox is gone, it is not the emulator's fault.
    const error = SandboxNotFoundError.isInstance(caught) ? new HttpError(404, caught.message, 'NOT_FOUND') : caught;
    if (!(error instanceof HttpError)) console.error(`[daytona emulator] ${method} ${url.pathname} failed:`, error);
    const status = error instanceof HttpError ? error.status : 500;
    sendError(
      response,
      table.source,
      status,
      error instanceof Error ? error.message : String(error),
      where,
      error instanceof HttpError ? error.code : undefined,
    );
  });
}
