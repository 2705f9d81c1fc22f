import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

/** What was being done when the SDK failed; the subject sharpens the mapped error. */
export interface VercelErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  path?: string | undefined;
  /** The option a 400/422 is about, when the call had one main argument. */
  argument?: string | undefined;
}

const provider = 'vercel';

/** The `{ error: { code, message } }` body of a Vercel API error, when it has one. */
function errorBody(error: unknown): { code: string | undefined; message: string | undefined } {
  const json = (error as { json?: { error?: { code?: unknown; message?: unknown } } } | null)?.json;
  const code = typeof json?.error?.code === 'string' ? json.error.code : undefined;
  const message = typeof json?.error?.message === 'string' ? json.error.message : undefined;
  return { code, message };
}

/**
 * Maps an error of `@vercel/sandbox` to a sandport error, keeping the SDK's error as `cause`. The
 * SDK's classes are recognised by shape (`APIError` has `response.status`, `StreamError` a
 * `code` and `sessionId`), so a second copy of the SDK maps the same. The traps: a stopped
 * session is 410 (the sandbox ended, for the contract), a taken name is 409, the SDK's own
 * credential check throws a plain `Error` naming `VERCEL_OIDC_TOKEN`, and a command stream that
 * ended early is a `StreamError` (retryable: the connection dropped).
 */
export function mapVercelError(error: unknown, context: VercelErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const cause = error;
  const { operation, sandboxId, path } = context;
  const message = error instanceof Error ? error.message : String(error);
  const status = (error as { response?: { status?: unknown } } | null)?.response?.status;
  const body = errorBody(error);
  const detail = [body.code, body.message ?? message].filter(Boolean).join(': ');
  if (typeof status === 'number') {
    if (status === 410 || (status === 404 && path === undefined))
      return new SandboxNotFoundError({
        message: `Sandbox ${sandboxId ?? ''} not found or no longer running (${operation}, HTTP ${status}): ${detail}`,
        sandboxId,
        provider,
        cause,
      });
    if (status === 404)
      return new SandboxFileNotFoundError({
        message: `No such file or directory in the sandbox: ${path}`,
        path: path ?? '',
        provider,
        cause,
      });
    if (status === 409)
      return new SandboxAlreadyExistsError({
        message: `Vercel refused ${operation}: it exists already (HTTP 409): ${detail}`,
        provider,
        cause,
      });
    if (status === 422 && /sandbox_(stopping|snapshotting)/.test(body.code ?? ''))
      return new SandboxProviderError({
        message: `The Vercel sandbox is ${body.code === 'sandbox_stopping' ? 'stopping' : 'snapshotting'} (${operation}): ${detail}`,
        provider,
        statusCode: 422,
        retryable: true,
        cause,
      });
    if (status === 401 || status === 403)
      return new SandboxAuthenticationError({
        message: `Vercel refused the credentials during ${operation} (HTTP ${status}; check the token, teamId and projectId): ${detail}`,
        provider,
        cause,
      });
    return fromHttpStatus(status, { provider, operation, detail, sandboxId, path, argument: context.argument, cause });
  }
  const name = error instanceof Error ? error.name : '';
  const streamCode = (error as { code?: unknown; sessionId?: unknown } | null)?.code;
  if (name === 'StreamError' || (typeof streamCode === 'string' && typeof (error as { sessionId?: unknown }).sessionId === 'string')) {
    if (streamCode === 'sandbox_stopped' || streamCode === 'session_stopped')
      return new SandboxNotFoundError({
        message: `Sandbox ${sandboxId ?? ''} stopped (${operation}): ${message}`,
        sandboxId,
        provider,
        cause,
      });
    return new SandboxProviderError({
      message: `The Vercel command stream failed during ${operation} (${String(streamCode)}): ${message}`,
      provider,
      retryable: streamCode === 'stream_ended_early',
      cause,
    });
  }
  if (/VERCEL_OIDC_TOKEN|credentials|not authenticated/i.test(message) && !(error instanceof TypeError))
    return new SandboxAuthenticationError({
      message: `Vercel credentials are missing or refused during ${operation}: ${message}`,
      provider,
      cause,
    });
  if (name === 'ZodError')
    return new SandboxProviderError({
      message: `Vercel answered ${operation} with an unexpected body: ${message.slice(0, 500)}`,
      provider,
      cause,
    });
  if (name === 'AbortError' || name === 'TimeoutError')
    return new SandboxProviderError({
      message: `Vercel ${operation} was aborted: ${message}`,
      provider,
      retryable: name === 'TimeoutError',
      cause,
    });
  const connection = fromConnectionError(error, { provider, operation, detail: message, cause });
  if (connection) return connection;
  if (/must be|invalid/i.test(message) && context.argument !== undefined)
    return new SandboxInvalidArgumentError({
      message: `Vercel refused ${operation}: ${message}`,
      argument: context.argument,
      provider,
      cause,
    });
  return new SandboxProviderError({ message: `Vercel error during ${operation}: ${message}`, provider, cause });
}
