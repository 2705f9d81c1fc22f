/**
 * The bridge's failures as sandport errors. The bridge answers `{ "error": string, "code": string }`
 * with a status; its codes say more than the status does (a 403 is a path outside `/workspace`,
 * not a bad token; a 400 on an id is an id that cannot exist), so they are looked at first, then
 * the kit's HTTP and connection tables decide.
 */
import {
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';
import { cloudflareEnvironment } from './cloudflare-options.js';

const provider = 'cloudflare';

/** An HTTP answer of the bridge that is not a success: the status, and the bridge's code and message when it sent them. Kept as `cause`. */
export class CloudflareBridgeHttpError extends Error {
  override readonly name = 'CloudflareBridgeHttpError';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly detail: string,
    readonly route: string,
  ) {
    super(`${route}: HTTP ${status}${code ? ` ${code}` : ''}: ${detail}`);
  }
}

/**
 * A file read whose connection the bridge dropped before answering: what the bridge does for a
 * missing file or a directory (its 404 branch is never reached). The files layer asks the sandbox
 * what the path is before it calls this a missing file.
 */
export class CloudflareDroppedReadError extends Error {
  override readonly name = 'CloudflareDroppedReadError';
  constructor(
    readonly route: string,
    options: { cause: unknown },
  ) {
    super(`${route}: the bridge closed the connection without an answer`, options);
  }
}

/** What was being done when the bridge failed; the subject sharpens the mapped error. */
export interface CloudflareErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  path?: string | undefined;
}

/**
 * Maps a failure of a bridge call to a sandport error, keeping the original as `cause`. A
 * sandport error passes through unchanged.
 */
export function mapCloudflareError(error: unknown, context: CloudflareErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const { operation, sandboxId, path } = context;
  const cause = error;
  if (error instanceof CloudflareDroppedReadError && path !== undefined)
    return new SandboxFileNotFoundError({ message: `No such file in the sandbox: ${path}`, path, provider, cause });
  if (error instanceof CloudflareBridgeHttpError) return fromBridgeAnswer(error, context);
  const message = error instanceof Error ? error.message : String(error);
  const connection = fromConnectionError(error, { provider, operation, detail: message, cause });
  if (connection) return connection;
  return new SandboxProviderError({
    message: `Bridge error during ${operation}${sandboxId ? ` (sandbox ${sandboxId})` : ''}: ${message}`,
    provider,
    cause,
  });
}

function fromBridgeAnswer(error: CloudflareBridgeHttpError, context: CloudflareErrorContext): SandboxError {
  const { operation, sandboxId, path } = context;
  const { status, code, detail } = error;
  const cause = error;
  if (status === 401 || code === 'unauthorized')
    return new SandboxAuthenticationError({
      message: `The bridge refused the token during ${operation} (set ${cloudflareEnvironment.token} or pass token; it is the Worker's SANDBOX_API_KEY): ${detail}`,
      provider,
      cause,
    });
  if (code === 'invalid_request' && /sandbox id/i.test(detail))
    return new SandboxNotFoundError({
      message: `No sandbox can have the id ${sandboxId ?? ''}: the bridge takes lowercase base32 ids (${detail})`,
      sandboxId,
      provider,
      cause,
    });
  if (status === 403 && code === 'invalid_request')
    return new SandboxInvalidArgumentError({
      message: `The bridge refused ${operation}: ${detail} (its file routes and cwd reach /workspace only)`,
      argument: /cwd/i.test(detail) ? 'cwd' : 'path',
      provider,
      cause,
    });
  if (status === 404 && code === 'workspace_read_not_found' && path !== undefined)
    return new SandboxFileNotFoundError({ message: `No such file in the sandbox: ${path}`, path, provider, cause });
  if (status === 404 && code === 'not_found')
    // A process the bridge no longer knows: its container was replaced (state lost).
    return new SandboxNotFoundError({
      message: `Sandbox ${sandboxId ?? ''} lost its state during ${operation} (the bridge no longer knows the process): ${detail}`,
      sandboxId,
      provider,
      cause,
    });
  if (status === 404 && code === undefined)
    return new SandboxCapabilityUnsupportedError({
      message: `The bridge has no route for ${operation} (${error.route}): is it the version the provider detected?`,
      capability: operation,
      provider,
      cause,
    });
  if (status === 413 || code === 'payload_too_large')
    return new SandboxInvalidArgumentError({
      message: `The bridge refused ${operation}: the body is above its 32 MiB limit (${detail})`,
      argument: 'data',
      provider,
      cause,
    });
  if (code === 'capacity_exceeded' || code === 'pool_error')
    return new SandboxProviderError({
      message: `The bridge has no container to give during ${operation} (max_instances of the deploy reached, or the pool failed): ${detail}`,
      provider,
      statusCode: status,
      retryable: true,
      cause,
    });
  if (code === 'workspace_archive_write_error' && operation === 'hydrateWorkspace')
    return new SandboxInvalidArgumentError({
      message: `The bridge could not extract the archive: ${detail}`,
      argument: 'archive',
      provider,
      cause,
    });
  if (code === 'tunnel_error')
    return new SandboxProviderError({
      message: `The bridge could not open the tunnel during ${operation} (quick tunnels need cloudflared in the image and egress to Cloudflare): ${detail}`,
      provider,
      statusCode: status,
      cause,
    });
  return fromHttpStatus(status, { provider, operation, detail: code ? `${code}: ${detail}` : detail, sandboxId, path, cause });
}
