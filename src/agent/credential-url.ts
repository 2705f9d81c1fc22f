/**
 * What the credential proxy's URL mode lets through: the model API's paths only, a bounded
 * request body, a valid per-sandbox placeholder, and a sandbox within its budget. Everything else
 * gets an Anthropic-shaped JSON error from the proxy itself and never reaches upstream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GrantTable, Grant, Refusal } from './credential-grants.js';
import { ReplyUsageReader } from './credential-usage.js';

/**
 * The paths the URL mode forwards, relative to the public URL, with their method: what the CLI
 * calls (`POST /v1/messages?beta=true` for every model call; `count_tokens`, which newer versions
 * may use). Its preflight (`HEAD /` or `HEAD /api/hello`) is answered 404 here, which the CLI
 * accepts.
 */
export const forwardedPaths: ReadonlyMap<string, string> = new Map([
  ['/v1/messages', 'POST'],
  ['/v1/messages/count_tokens', 'POST'],
]);

/** The Messages API's own request limit (32 MB), the default body cap. */
export const defaultMaxRequestBodyBytes = 32 * 1024 * 1024;

export interface UrlModeContext {
  /** The public URL's path without a trailing slash (`''` at the root). */
  readonly pathPrefix: string;
  readonly maxRequestBodyBytes: number;
  readonly grants: GrantTable;
  presented(request: IncomingMessage): string | undefined;
  /** Sends the request upstream to `path` (plus the request's query) with `body`, and the reply back. */
  forward(request: IncomingMessage, response: ServerResponse, path: string, body: Buffer, onReply: (reply: IncomingMessage) => void): void;
}

export function serveUrlRequest(context: UrlModeContext, request: IncomingMessage, response: ServerResponse): void {
  const [rawPath = '/'] = (request.url ?? '/').split('?', 1);
  const path = context.pathPrefix && rawPath.startsWith(`${context.pathPrefix}/`) ? rawPath.slice(context.pathPrefix.length) : rawPath;
  const method = forwardedPaths.get(path);
  if (!method) {
    refuse(request, response, {
      status: 404,
      type: 'not_found_error',
      message: `sandport credential proxy: ${path} is not forwarded (only ${[...forwardedPaths.keys()].join(', ')})`,
    });
    return;
  }
  if (request.method !== method) {
    response.setHeader('allow', method);
    refuse(request, response, {
      status: 405,
      type: 'invalid_request_error',
      message: `sandport credential proxy: ${path} takes ${method}, not ${request.method}`,
    });
    return;
  }
  const presented = context.presented(request);
  const grant = presented ? context.grants.match(presented) : undefined;
  if (!grant) {
    refuse(request, response, {
      status: 401,
      type: 'authentication_error',
      message: 'sandport credential proxy: missing or unknown placeholder credential',
    });
    return;
  }
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > context.maxRequestBodyBytes) {
    grant.refuse();
    refuse(request, response, tooLarge(context.maxRequestBodyBytes));
    return;
  }
  // Checked before the body is read (no point reading what will not be sent), and again after:
  // other requests of the sandbox may have used the budget meanwhile.
  const early = grant.check();
  if (early) {
    grant.refuse();
    refuse(request, response, early);
    return;
  }
  grant.inflight.add(response);
  response.on('close', () => grant.inflight.delete(response));
  readBody(request, context.maxRequestBodyBytes).then(
    (body) => {
      if (body === undefined) {
        grant.refuse();
        refuse(request, response, tooLarge(context.maxRequestBodyBytes));
        return;
      }
      const refusal = grant.admit();
      if (refusal) {
        refuse(request, response, refusal);
        return;
      }
      context.forward(request, response, path, body, (reply) => meter(grant, path, reply));
    },
    () => response.destroy(),
  );
}

/** Reads the tokens of a successful Messages reply into the grant's usage as it streams. */
function meter(grant: Grant, path: string, reply: IncomingMessage): void {
  if (path !== '/v1/messages' || (reply.statusCode ?? 500) >= 300) return;
  const reader = new ReplyUsageReader(String(reply.headers['content-type'] ?? ''));
  reply.on('data', (chunk: Buffer) => reader.push(chunk));
  // A reply cut short (revoked, client gone) still counts what it reported so far.
  let recorded = false;
  const record = (): void => {
    if (recorded) return;
    recorded = true;
    reader.end();
    grant.record(reader.usage, reader.model);
  };
  reply.once('end', record);
  reply.once('close', record);
}

function tooLarge(limit: number): Refusal {
  return {
    status: 413,
    type: 'request_too_large',
    message: `sandport credential proxy: the request body is larger than ${limit} bytes`,
  };
}

/** The body, or `undefined` once it passed `limit` bytes (the rest is not read). */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        request.off('data', onData);
        request.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    request.on('data', onData);
    request.once('end', () => resolve(Buffer.concat(chunks)));
    request.once('error', reject);
    // A connection dropped mid-body (the client left, or a revocation destroyed it) settles too.
    request.once('close', () => {
      if (!request.complete && size <= limit) reject(new Error('the request was aborted'));
    });
  });
}

function refuse(request: IncomingMessage, response: ServerResponse, refusal: Refusal): void {
  // The connection closes after the answer when the body was not read; what is left is discarded.
  if (!request.complete) response.setHeader('connection', 'close');
  response.writeHead(refusal.status, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ type: 'error', error: { type: refusal.type, message: refusal.message } }));
  if (!request.complete) request.resume();
}
