/**
 * Error tables every remote adapter needs: HTTP statuses (E2B, Daytona, Vercel, Fly, Docker's
 * engine), gRPC statuses (Modal, Kubernetes' exec status), and connection failures. Each returns
 * a typed sandport error with `retryable` set and the provider's error kept as `cause`. An
 * adapter's `<name>-errors.ts` handles its special cases first (messages that say more than the
 * status), then falls back to these.
 */
import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  type SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
} from '../errors/index.js';

/** What was being done, and on what: the subject sharpens the mapped error. */
export interface ErrorContext {
  provider: string;
  /** The operation, for messages (`'create'`, `'files.read'`). */
  operation: string;
  sandboxId?: string | undefined;
  /** A sandbox path: a 404 then means the file, not the sandbox. */
  path?: string | undefined;
  /** The option an invalid-argument answer refers to, when the call had one main argument. */
  argument?: string | undefined;
  /** The provider's own message, appended to ours. */
  detail?: string | undefined;
  cause?: unknown;
}

function describe(context: ErrorContext, what: string): string {
  return `${what} during ${context.operation}${context.detail ? `: ${context.detail}` : ''}`;
}

/** Maps an HTTP status. 2xx/3xx are not errors: callers only pass failures. */
export function fromHttpStatus(status: number, context: ErrorContext): SandboxError {
  const { provider, cause, sandboxId, path } = context;
  if (status === 401 || status === 403) {
    return new SandboxAuthenticationError({
      message: describe(context, `The ${provider} API refused the credentials (HTTP ${status})`),
      provider,
      cause,
    });
  }
  if (status === 404 || status === 410) {
    if (path !== undefined)
      return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider, cause });
    return new SandboxNotFoundError({
      message: describe(context, `Sandbox ${sandboxId ?? ''} not found (HTTP ${status})`),
      sandboxId,
      provider,
      cause,
    });
  }
  if (status === 409) return new SandboxAlreadyExistsError({ message: describe(context, `Conflict (HTTP 409)`), provider, cause });
  if (status === 400 || status === 413 || status === 422) {
    return new SandboxInvalidArgumentError({
      message: describe(context, `The ${provider} API refused the request (HTTP ${status})`),
      argument: context.argument ?? context.operation,
      provider,
      cause,
    });
  }
  const retryable = status === 408 || status === 425 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
  return new SandboxProviderError({
    message: describe(context, `The ${provider} API failed (HTTP ${status})`),
    provider,
    statusCode: status,
    retryable,
    cause,
  });
}

/** gRPC status codes by name. */
export const grpcStatus = {
  ok: 0,
  cancelled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  alreadyExists: 6,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  aborted: 10,
  outOfRange: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  dataLoss: 15,
  unauthenticated: 16,
} as const;

const retryableGrpc = new Set<number>([
  grpcStatus.cancelled,
  grpcStatus.unknown,
  grpcStatus.resourceExhausted,
  grpcStatus.aborted,
  grpcStatus.internal,
  grpcStatus.unavailable,
]);

/** Maps a gRPC status code. */
export function fromGrpcStatus(code: number, context: ErrorContext): SandboxError {
  const { provider, cause, sandboxId, path } = context;
  switch (code) {
    case grpcStatus.unauthenticated:
    case grpcStatus.permissionDenied:
      return new SandboxAuthenticationError({ message: describe(context, `The ${provider} API refused the credentials`), provider, cause });
    case grpcStatus.notFound:
      if (path !== undefined)
        return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider, cause });
      return new SandboxNotFoundError({ message: describe(context, `Sandbox ${sandboxId ?? ''} not found`), sandboxId, provider, cause });
    case grpcStatus.alreadyExists:
      return new SandboxAlreadyExistsError({ message: describe(context, 'Already exists'), provider, cause });
    case grpcStatus.invalidArgument:
    case grpcStatus.outOfRange:
      return new SandboxInvalidArgumentError({
        message: describe(context, `The ${provider} API refused the request`),
        argument: context.argument ?? context.operation,
        provider,
        cause,
      });
    default:
      return new SandboxProviderError({
        message: describe(context, `The ${provider} API failed (gRPC status ${code})`),
        provider,
        statusCode: code,
        retryable: retryableGrpc.has(code),
        cause,
      });
  }
}

/** Error codes of a connection that failed or dropped: worth retrying an idempotent call. */
const transientCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** The errno-style code of an error or of its causes (fetch wraps the socket error in `cause`). */
export function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Maps a connection failure to a retryable `SandboxProviderError`; `undefined` when it is not one. */
export function fromConnectionError(error: unknown, context: ErrorContext): SandboxProviderError | undefined {
  const code = errorCode(error);
  const fetchFailed = error instanceof TypeError && error.message === 'fetch failed';
  if (!fetchFailed && (code === undefined || !transientCodes.has(code))) return undefined;
  return new SandboxProviderError({
    message: describe(context, `The connection to the ${context.provider} API failed${code ? ` (${code})` : ''}`),
    provider: context.provider,
    retryable: true,
    cause: context.cause ?? error,
  });
}
