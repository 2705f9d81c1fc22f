/**
 * The HTTP plumbing of the Fly emulator: a route table under `/v1`, path patterns with `:name`
 * segments, JSON bodies, bearer auth, and Fly's error body `{ "error": "..." }`.
 *
 * An unknown route answers 404, the status Fly's API gives for a path it does not serve, but the
 * body names the call (`the Fly emulator does not implement POST /v1/apps/a/machines/m/cordon`)
 * and the header `fly-emulator-unimplemented: 1` is set, so a gap shows as a loud failure that a
 * client cannot mistake for "machine not found".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request as the handlers see it. */
export interface FlyRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingMessage['headers'];
  /** Path parameters of the matched pattern (`/v1/apps/:app` gives `app`). */
  readonly params: Readonly<Record<string, string>>;
  /** The whole body (bounded by `maxBodyBytes`). */
  body(): Promise<Buffer>;
  /** The body parsed as JSON (`{}` when empty); a malformed body is a 400. */
  json(): Promise<unknown>;
  /** A request header as one string (the first of several), or undefined. */
  header(name: string): string | undefined;
}

/** What a handler answers: a status and a JSON body (`undefined` for an empty body). */
export interface FlyAnswer {
  status: number;
  body?: unknown;
}

export type FlyHandler = (request: FlyRequest, response: ServerResponse) => Promise<FlyAnswer>;

export interface FlyRoute {
  readonly method: string;
  /** `/v1/apps/:app/machines/:id/wait` */
  readonly pattern: string;
  readonly handle: FlyHandler;
}

/**
 * An error a handler throws: the status and Fly's `{ error }` body, with further fields when Fly
 * sends them (`status: 'name_taken'`, or a lease conflict's own shape through `body`).
 */
export class FlyHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = { error: message },
  ) {
    super(message);
  }
}

/** The most a JSON request body may be: 16 MiB (the emulator's own bound; Fly publishes none). */
export const maxBodyBytes = 16 * 1024 * 1024;

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  if (body === undefined) {
    response.writeHead(status, { 'content-length': '0', ...headers });
    response.end();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
  const wanted = pattern.split('/');
  // A trailing slash is the same path (Fly's docs show `DELETE …/machines/{id}/`).
  const actual = path.length > 1 && path.endsWith('/') ? path.slice(0, -1).split('/') : path.split('/');
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
    if (total > maxBodyBytes) throw new FlyHttpError(413, `request body over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export interface FlyRouterOptions {
  /** The bearer token every call must carry. */
  token: string;
  /** Counted per `METHOD pattern` on every call, for tests and the benchmark. */
  calls: Map<string, number>;
}

/** Fly's answer to a missing or wrong token. */
function checkToken(raw: IncomingMessage, token: string): void {
  const given = raw.headers.authorization ?? '';
  // Fly takes `Bearer <token>` and, for macaroon tokens, `FlyV1 <token>`.
  const match = /^(?:Bearer|FlyV1)\s+(.+)$/i.exec(given.trim());
  if (!match || match[1] !== token) throw new FlyHttpError(401, 'unauthorized');
}

/** A request listener serving `routes`; anything else is a loud 404 naming the call. */
export function createFlyRouter(routes: readonly FlyRoute[], options: FlyRouterOptions) {
  return (raw: IncomingMessage, response: ServerResponse): void => {
    const url = new URL(raw.url ?? '/', 'http://emulator');
    const method = raw.method ?? 'GET';
    let matched: { route: FlyRoute; params: Record<string, string> } | undefined;
    for (const route of routes) {
      if (route.method !== method) continue;
      const params = matchPattern(route.pattern, url.pathname);
      if (params) {
        matched = { route, params };
        break;
      }
    }
    let bodyRead: Promise<Buffer> | undefined;
    const request: FlyRequest = {
      method,
      url,
      headers: raw.headers,
      params: matched?.params ?? {},
      body: () => (bodyRead ??= readBody(raw)),
      async json() {
        const body = await request.body();
        if (body.byteLength === 0) return {};
        try {
          return JSON.parse(body.toString('utf8')) as unknown;
        } catch {
          throw new FlyHttpError(400, 'invalid_argument: request body is not valid JSON');
        }
      },
      header(name) {
        const value = raw.headers[name.toLowerCase()];
        return Array.isArray(value) ? value[0] : value;
      },
    };
    void (async () => {
      checkToken(raw, options.token);
      if (!matched) {
        raw.resume();
        sendJson(
          response,
          404,
          { error: `the Fly emulator does not implement ${method} ${url.pathname}` },
          { 'fly-emulator-unimplemented': '1' },
        );
        return;
      }
      const key = `${matched.route.method} ${matched.route.pattern}`;
      options.calls.set(key, (options.calls.get(key) ?? 0) + 1);
      const answer = await matched.route.handle(request, response);
      sendJson(response, answer.status, answer.body);
    })().catch((error: unknown) => {
      raw.resume();
      if (error instanceof FlyHttpError) return sendJson(response, error.status, error.body);
      console.error(`[fly emulator] ${method} ${url.pathname} failed:`, error);
      sendJson(response, 500, { error: error instanceof Error ? error.message : String(error) });
    });
  };
}
