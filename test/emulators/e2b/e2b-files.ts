/**
 * envd's HTTP file transfer and health check, as the E2B SDK and a plain `fetch` of a signed URL
 * use them:
 *
 * - `GET /files?path=&username=` streams the file out of the sandbox (never whole in memory),
 *   gzip-encoded when the client accepts gzip (Node's fetch always does), else as is with its
 *   length; a missing path is 404, a directory 400, with envd's `{ code, message }` body;
 * - `POST /files?path=&username=` writes an `application/octet-stream` body to `path`, or each
 *   `file` part of a `multipart/form-data` body to `path` (one part) or to the part's filename,
 *   gunzipping a `Content-Encoding: gzip` body; the bytes stream into the sandbox as they come.
 *   Parents are made; the answer is `[{ name, type: 'file', path }]`. Files go to the calling
 *   user (uid 1000 for `user`) where the sandbox can map that user;
 * - `GET /health` is 204 while the sandbox runs and E2B's proxy 502 once it ended (timed out,
 *   killed) or is paused, which the SDK's `isRunning` and its health probes read.
 *
 * A secure sandbox's /files take its access token (`X-Access-Token`) or a signature made as the
 * SDK's `uploadUrl`/`downloadUrl` make it: `v1_` and the unpadded base64 SHA-256 of
 * `path:operation:username:token[:expiration]`; a bad signature, a token that does not match and
 * an expired signature are 401, as envd answers. The sandbox is the one named by
 * `E2b-Sandbox-Id` (the SDK sends it), by a `<port>-<id>.<domain>` host name, or, for a signed
 * URL fetched as it is, the one whose token made the signature.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { SandboxNotFoundError, SandboxPausedError } from '../../../src/kit/index.js';
import { EmulatorFiles, FileToolError } from '../shared/file-tools.js';
import { HttpError, sendJson, type E2bRequest, type E2bRoute } from './e2b-http.js';
import type { E2bSandbox, E2bState } from './e2b-state.js';
import { EnvdFsError } from './e2b-fs-tools.js';
import { PathResolveError, UnknownUserError, canOwn, defaultWorkdir, resolveEnvdPath, resolveUser, type EnvdUser } from './e2b-fs-users.js';
import { metadataFromHeaders, writeMetadata } from './e2b-fs-metadata.js';
import { MultipartError, multipartBoundary, multipartParts } from './e2b-multipart.js';

/** The envd port in E2B's host names (`49983-<sandboxID>.<domain>`). */
const envdPort = '49983';

/** E2B's proxy's answer for a sandbox that is not running. */
function sendSandboxGone(response: ServerResponse, sandboxId: string): void {
  sendJson(response, 502, { sandboxId, message: 'The sandbox was not found', code: 502 });
}

/** The sandbox id a request names by header or host name. */
function namedSandboxId(request: E2bRequest, domain: string): string | undefined {
  const header = request.headers['e2b-sandbox-id'];
  if (typeof header === 'string' && header !== '') return header;
  const host = (request.headers.host ?? '').replace(/:\d+$/, '');
  const suffix = `.${domain}`;
  if (host.endsWith(suffix)) {
    const match = /^(\d+)-([a-z0-9]+)$/.exec(host.slice(0, -suffix.length));
    if (match && match[1] === envdPort) return match[2];
  }
  return undefined;
}

/** envd's signature of a file URL (see the file's comment). */
export function fileSignature(path: string, operation: 'read' | 'write', username: string, token: string, expiration?: number): string {
  const raw = [path, operation, username, token, ...(expiration === undefined ? [] : [String(expiration)])].join(':');
  return `v1_${createHash('sha256').update(raw, 'utf8').digest('base64').replace(/=+$/, '')}`;
}

interface FileQuery {
  path: string;
  username: string | undefined;
  signature: string | undefined;
  expiration: number | undefined;
}

function fileQuery(request: E2bRequest): FileQuery {
  const query = request.url.searchParams;
  const rawExpiration = query.get('signature_expiration');
  if (rawExpiration !== null && !/^-?\d+$/.test(rawExpiration)) {
    throw new HttpError(400, `Invalid format for parameter signature_expiration: ${rawExpiration} is not an integer`);
  }
  return {
    path: query.get('path') ?? '',
    username: query.get('username') ?? undefined,
    signature: query.get('signature') ?? undefined,
    expiration: rawExpiration === null ? undefined : Number(rawExpiration),
  };
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * The running sandbox a /files request is for, its token or signature checked. Answers the
 * request itself (502, 401) and resolves undefined when it cannot be served.
 */
function fileSandbox(
  state: E2bState,
  request: E2bRequest,
  response: ServerResponse,
  query: FileQuery,
  operation: 'read' | 'write',
): E2bSandbox | undefined {
  const signed = (token: string) =>
    query.signature !== undefined &&
    sameText(fileSignature(query.path, operation, query.username ?? '', token, query.expiration), query.signature);
  const named = namedSandboxId(request, state.domain);
  let sandbox: E2bSandbox | undefined;
  if (named !== undefined) {
    sandbox = state.sandboxes.get(named);
  } else if (query.signature !== undefined) {
    sandbox = state.sandboxes
      .list({ includeEnded: true })
      .find((entry) => entry.data.envdAccessToken !== undefined && signed(entry.data.envdAccessToken));
    if (!sandbox) throw new HttpError(401, 'invalid signature');
  } else {
    throw new HttpError(
      400,
      'The E2B emulator serves every sandbox at one URL: name the sandbox with the E2b-Sandbox-Id header (the SDK sends it), or fetch a signed URL of a secure sandbox',
    );
  }
  if (!sandbox || sandbox.end || sandbox.data.paused) {
    sendSandboxGone(response, named ?? sandbox?.id ?? '');
    return undefined;
  }
  const token = sandbox.data.envdAccessToken;
  if (token === undefined) return sandbox;
  const header = request.headers['x-access-token'];
  if (typeof header === 'string' && header !== '') {
    if (!sameText(header, token)) throw new HttpError(401, 'access token present in header but does not match');
    return sandbox;
  }
  if (query.signature === undefined) throw new HttpError(401, 'missing signature query parameter');
  if (!signed(token)) throw new HttpError(401, 'invalid signature');
  if (query.expiration !== undefined && query.expiration < Math.floor(Date.now() / 1000)) {
    throw new HttpError(401, 'signature is already expired');
  }
  return sandbox;
}

/** The calling user, as envd's /files resolve it (an unknown one is 401). */
async function fileUser(sandbox: E2bSandbox, username: string | undefined): Promise<EnvdUser> {
  try {
    return await resolveUser(sandbox, username);
  } catch (error) {
    if (error instanceof UnknownUserError) throw new HttpError(401, error.message);
    throw sandboxFailure(error, sandbox);
  }
}

function resolvePath(path: string, user: EnvdUser, sandbox: E2bSandbox): string {
  try {
    return resolveEnvdPath(path, user, defaultWorkdir(sandbox));
  } catch (error) {
    if (error instanceof PathResolveError) throw new HttpError(400, `error expanding and resolving path '${path}': ${error.message}`);
    throw error;
  }
}

/** A sandbox that went away while it was served is E2B's 502; anything else is rethrown. */
function sandboxFailure(error: unknown, sandbox: E2bSandbox): unknown {
  if (SandboxPausedError.isInstance(error) || SandboxNotFoundError.isInstance(error) || sandbox.end) {
    return new HttpError(502, 'The sandbox was not found');
  }
  return error;
}

/** Which encoding a download gets, as envd negotiates `Accept-Encoding` (only gzip besides identity). Throws 406. */
export function negotiateEncoding(header: string | undefined): 'gzip' | 'identity' {
  if (!header || header.trim() === '') return 'identity';
  const offers = header.split(',').map((value) => {
    const [name, ...parameters] = value.split(';');
    const q = parameters.map((parameter) => /^\s*q\s*=\s*([\d.]+)\s*$/i.exec(parameter)?.[1]).find((found) => found !== undefined);
    return { name: name!.trim().toLowerCase(), quality: q === undefined ? 1 : Number(q) };
  });
  const identityAccepted = offers.some((offer) => offer.name === 'identity' && offer.quality > 0);
  const identityRejected =
    offers.some((offer) => offer.name === 'identity' && offer.quality === 0) ||
    (offers.some((offer) => offer.name === '*' && offer.quality === 0) && !identityAccepted);
  for (const offer of [...offers].sort((a, b) => b.quality - a.quality)) {
    if (offer.quality === 0) continue;
    if (offer.name === 'identity') return 'identity';
    if (offer.name === '*') return identityRejected ? 'gzip' : 'identity';
    if (offer.name === 'gzip') return 'gzip';
  }
  if (!identityRejected) return 'identity';
  throw new HttpError(406, 'error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]');
}

const contentTypes: Record<string, string> = {
  '.txt': 'text/plain; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.xml': 'text/xml; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.wasm': 'application/wasm',
};

function contentTypeOf(path: string): string {
  return contentTypes[posix.extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** The file-tool failure of a download as envd's status and message. */
function downloadError(error: unknown, path: string, sandbox: E2bSandbox): unknown {
  if (!(error instanceof FileToolError)) return sandboxFailure(error, sandbox);
  if (error.fault === 'not_found') return new HttpError(404, `path '${path}' does not exist`);
  if (error.fault === 'is_directory') return new HttpError(400, `path '${path}' is a directory`);
  if (error.fault === 'not_directory') return new HttpError(500, `error checking if path exists '${path}': stat ${path}: not a directory`);
  return new HttpError(500, `error opening file '${path}': ${error.detail}`);
}

async function download(state: E2bState, request: E2bRequest, response: ServerResponse): Promise<void> {
  const query = fileQuery(request);
  const sandbox = fileSandbox(state, request, response, query, 'read');
  if (!sandbox) return;
  const user = await fileUser(sandbox, query.username);
  const path = resolvePath(query.path, user, sandbox);
  const encoding = negotiateEncoding(request.headers['accept-encoding']);
  const files = new EmulatorFiles(sandbox.local);
  const controller = new AbortController();
  response.on('close', () => controller.abort(new Error('the client went away')));
  const stream = await files.readStream(path, { signal: controller.signal }).catch((error: unknown) => {
    throw downloadError(error, path, sandbox);
  });
  // Only an identity answer has a length (a gzip one streams without).
  const size = encoding === 'identity' ? await sizeOf(sandbox, path) : undefined;
  const headers: Record<string, string | number> = {
    'content-disposition': `inline; filename="${posix.basename(path).replace(/(["\\])/g, '\\$1')}"`,
    vary: 'Accept-Encoding',
    'content-type': contentTypeOf(path),
  };
  if (encoding === 'gzip') headers['content-encoding'] = 'gzip';
  else {
    headers['accept-ranges'] = 'bytes';
    if (size !== undefined) headers['content-length'] = size;
  }
  response.writeHead(200, headers);
  const source = Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>, { highWaterMark: 64 * 1024 });
  const stages =
    encoding === 'gzip'
      ? [source, createGzip({ level: zlibConstants.Z_BEST_SPEED, chunkSize: gzipChunkBytes }), response]
      : [source, response];
  await pipeline(stages as [Readable, ...NodeJS.WritableStream[]]).catch(() => {
    // The client went away or the sandbox did: the answer is cut short, as envd's would be.
    response.destroy();
  });
}

/**
 * Output pieces of a gzip answer. Node's fetch (undici) inflates a response chunk by chunk at a
 * cost per chunk that makes 16 KiB pieces (zlib's default) many times slower than big ones.
 */
const gzipChunkBytes = 256 * 1024;

/** The size of the file `path` finally points at. */
async function sizeOf(sandbox: E2bSandbox, path: string): Promise<number | undefined> {
  const result = await sandbox.local.run(['/bin/sh', '-c', 'stat -L -c %s -- "$1"', 'size', path]).catch(() => undefined);
  const size = Number(result?.stdout.trim());
  return result?.exitCode === 0 && Number.isFinite(size) ? size : undefined;
}

/** The file-tool failure of an upload as envd's status and message. */
function uploadError(error: unknown, path: string, sandbox: E2bSandbox): unknown {
  if (error instanceof HttpError) return error;
  if (error instanceof EnvdFsError) return new HttpError(500, error.message);
  if (!(error instanceof FileToolError)) return sandboxFailure(error, sandbox);
  if (error.fault === 'is_directory') return new HttpError(400, `path is a directory: ${path}`);
  if (error.fault === 'not_directory') return new HttpError(500, `error ensuring directories: path is a file: ${posix.dirname(path)}`);
  if (error.fault === 'too_large') return new HttpError(507, 'not enough disk space available');
  return new HttpError(500, `error opening file: ${error.detail}`);
}

/** Writes one file from `source` as the user; resolves to envd's answer entry. */
async function writeFile(
  sandbox: E2bSandbox,
  user: EnvdUser,
  path: string,
  source: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
  metadata: Record<string, string> | undefined,
): Promise<Record<string, unknown>> {
  const files = new EmulatorFiles(sandbox.local);
  let stored: Record<string, string> | undefined;
  const body = Readable.toWeb(Readable.from(source, { objectMode: false })) as unknown as ReadableStream<Uint8Array>;
  try {
    // envd opens the file before it reads the body: a directory is refused at once, whatever
    // the body's size (the write tool would fail mid-stream, when the body is still coming).
    const existing = await files.statEntry(path, { signal }).catch(() => undefined);
    if (existing?.type === 'directory') {
      // The body is read to its end first: answering while the client still sends it resets the
      // connection, which the client's pool would reuse for its next request.
      for await (const _ of source) void _;
      throw new FileToolError('is_directory', path, 'is a directory');
    }
    // envd chowns the file as it opens it, before the body, and answers as soon as the body is
    // in: so the owner is settled first here (canOwn reads the uid map on a sandbox's first
    // upload) and the write tool chowns at creation. Any command after the body is a window in
    // which a command waiting for the file can exit and its sandbox be killed (an entrypoint
    // ending its sandbox), failing an upload that had landed.
    const owner = (user.uid !== 0 || user.gid !== 0) && (await canOwn(sandbox, user)) ? { uid: user.uid, gid: user.gid } : undefined;
    await files.write(path, body, { signal, ...(owner && { owner }) });
    stored = await writeMetadata(sandbox, path, metadata);
  } catch (error) {
    if (isZlibError(error)) throw new HttpError(400, `error decompressing request body: ${error.message}`);
    throw uploadError(error, path, sandbox);
  }
  return { path, name: posix.basename(path), type: 'file', ...(stored ? { metadata: stored } : {}) };
}

function isZlibError(error: unknown): error is Error {
  return (
    error instanceof Error &&
    typeof (error as NodeJS.ErrnoException).code === 'string' &&
    (error as NodeJS.ErrnoException).code!.startsWith('Z_')
  );
}

/** The request body, gunzipped when it says it is gzip. Throws 400 for another encoding. */
function decodedBody(request: E2bRequest): AsyncIterable<Uint8Array> {
  const header = (request.headers['content-encoding'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (header === '' || header === 'identity') return request.raw;
  if (header !== 'gzip') {
    throw new HttpError(
      400,
      `error decompressing request body: unsupported Content-Encoding: ${request.headers['content-encoding']}, supported: [gzip]`,
    );
  }
  const gunzip = createGunzip();
  // Not pipeline: a write refused early must leave the request readable, so that its answer gets out.
  request.raw.pipe(gunzip);
  return gunzip;
}

async function upload(state: E2bState, request: E2bRequest, response: ServerResponse): Promise<void> {
  const query = fileQuery(request);
  const sandbox = fileSandbox(state, request, response, query, 'write');
  if (!sandbox) return void request.raw.resume();
  const user = await fileUser(sandbox, query.username);
  const metadata = metadataFromHeaders(request.headers);
  const controller = new AbortController();
  request.raw.on('close', () => {
    if (!request.raw.complete) controller.abort(new Error('the client went away'));
  });
  const contentType = request.headers['content-type'] ?? '';
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  const written: Array<Record<string, unknown>> = [];
  if (mediaType === 'application/octet-stream') {
    if (!request.url.searchParams.has('path')) throw new HttpError(400, 'path query parameter is required for raw body upload');
    const path = resolvePath(query.path, user, sandbox);
    written.push(await writeFile(sandbox, user, path, decodedBody(request), controller.signal, metadata));
  } else if (mediaType.startsWith('multipart/')) {
    const boundary = multipartBoundary(contentType);
    if (!boundary) throw new HttpError(500, 'error parsing multipart form: no multipart boundary param in Content-Type');
    try {
      for await (const part of multipartParts(decodedBody(request), boundary)) {
        if (part.name !== 'file') continue;
        const named = request.url.searchParams.has('path') ? query.path : part.filename;
        if (named === undefined)
          throw new HttpError(400, 'error getting multipart custom part file name: filename not found in Content-Disposition header');
        const path = resolvePath(named, user, sandbox);
        if (written.some((entry) => entry.path === path)) {
          throw new HttpError(
            400,
            `you cannot upload multiple files to the same path '${path}' in one upload request, only the first specified file was uploaded`,
          );
        }
        written.push(await writeFile(sandbox, user, path, part.body, controller.signal, metadata));
      }
    } catch (error) {
      if (error instanceof MultipartError) throw new HttpError(500, `error reading form: ${error.message}`);
      throw error;
    }
  } else {
    throw new HttpError(400, `unsupported content type: ${contentType}, expected multipart/form-data or application/octet-stream`);
  }
  sendJson(response, 200, written);
}

export function fileRoutes(state: E2bState): E2bRoute[] {
  return [
    { method: 'GET', pattern: '/files', handle: (request, response) => download(state, request, response) },
    {
      method: 'POST',
      pattern: '/files',
      async handle(request, response) {
        try {
          await upload(state, request, response);
        } finally {
          // Whatever was refused, the rest of the body is read, so the answer reaches the client.
          if (!request.raw.complete) request.raw.resume();
        }
      },
    },
    {
      method: 'GET',
      pattern: '/health',
      async handle(request, response) {
        const id = namedSandboxId(request, state.domain) ?? '';
        const sandbox = state.sandboxes.get(id);
        if (!sandbox || sandbox.end || sandbox.data.paused) return sendSandboxGone(response, id);
        response.writeHead(204);
        response.end();
      },
    },
  ];
}
