/**
 * The HTTP plumbing of the Kubernetes emulator: bearer auth, the request path taken apart the way
 * the API server does (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`,
 * `/apis/{group}/{version}/…`), bodies, and `Status` answers. A path the emulator does not serve
 * answers 404 with a `Status` whose message names the call (`the Kubernetes emulator does not
 * implement GET /apis/apps/v1/deployments`) and the header `kubernetes-emulator-unimplemented: 1`,
 * so a gap is a loud failure a client cannot take for "object not found".
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KubeStatusError, statusBody } from './k8s-status.js';

/** The most a request body may be: 3 MiB, the API server's own limit for one object (etcd's 1.5 MiB value limit, doubled for encoding). */
export const maxBodyBytes = 3 * 1024 * 1024;

/** A resource path taken apart. */
export interface ResourcePath {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

/**
 * Parses `/api/v1/…` and `/apis/<group>/<version>/…` resource paths; undefined for anything else
 * (discovery documents are matched before this).
 */
export function parseResourcePath(pathname: string): ResourcePath | undefined {
  const parts = pathname
    .split('/')
    .filter((part) => part !== '')
    .map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    version = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else return undefined;
  // Legacy watch paths: `/api/v1/watch/namespaces/{ns}/pods`.
  if (rest[0] === 'watch') rest = rest.slice(1);
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0 || rest.length > 3) return undefined;
  return { group, version, namespace, resource: rest[0]!, name: rest[1], subresource: rest[2] };
}

export async function readBody(raw: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > maxBodyBytes) throw new KubeStatusError('RequestEntityTooLarge', `the request body is over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The body as JSON; `{}` when empty; a 400 `Status` when it is not JSON. */
export async function readJson(raw: IncomingMessage): Promise<unknown> {
  const body = await readBody(raw);
  if (body.byteLength === 0) return {};
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    const contentType = raw.headers['content-type'] ?? '';
    if (/yaml|protobuf/.test(contentType)) {
      throw new KubeStatusError('UnsupportedMediaType', `the Kubernetes emulator reads JSON bodies only, not ${contentType}`);
    }
    throw new KubeStatusError('BadRequest', `the request body is not valid JSON: ${(error as Error).message}`);
  }
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-cache, private',
    ...headers,
  });
  response.end(text);
}

export function sendStatusError(response: ServerResponse, error: KubeStatusError, headers: Record<string, string> = {}): void {
  sendJson(response, error.code, error.toStatus(), headers);
}

/** The loud answer to a call the emulator does not serve. */
export function unimplemented(method: string, pathname: string): KubeStatusError {
  return new KubeStatusError('NotFound', `the Kubernetes emulator does not implement ${method} ${pathname}`);
}

export const unimplementedHeader = { 'kubernetes-emulator-unimplemented': '1' };

/** Checks `Authorization: Bearer <token>`; a 401 `Status` otherwise (as the API server answers an unauthenticated call). */
export function checkToken(headers: IncomingMessage['headers'], token: string): void {
  const match = /^Bearer\s+(.+)$/i.exec((headers.authorization ?? '').trim());
  if (!match || match[1] !== token) throw new KubeStatusError('Unauthorized', 'Unauthorized');
}

/** A query flag as the API server reads it (`true`, `1`: true; absent: the default). */
export function queryFlag(url: URL, name: string, fallback = false): boolean {
  const value = url.searchParams.get(name);
  if (value === null) return fallback;
  return value === 'true' || value === '1' || value === '';
}

export function statusSuccess(details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', ...(details ? { details } : {}) };
}

export { statusBody };
