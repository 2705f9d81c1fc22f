import {
  SandboxAlreadyExistsError,
  SandboxError,
  SandboxProviderError,
  SandboxTimeoutError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

const provider = 'fly';

/** What was being done when the Machines API failed; the subject sharpens the mapped error. */
export interface FlyErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  /** The option a 400/422 answer refers to. */
  argument?: string | undefined;
}

/** A failed answer of the Machines API: its status and its `{ "error": "..." }` message. */
export class FlyApiError extends Error {
  override readonly name = 'FlyApiError';
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly method: string,
    readonly path: string,
    /** `Retry-After` of a 429, in milliseconds. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(`${method} ${path}: HTTP ${status}${detail ? `: ${detail}` : ''}`);
  }
}

/**
 * Maps a Machines API failure to a sandport error, keeping the original as `cause`. The traps:
 * Fly answers a name that is taken with 409 or with 422 "already exists/taken"; a wait that ran
 * out with 408 (not retryable as a timeout of the server: the caller's wait says how long); an
 * exec past its `timeout` with 408 too; a machine that is not running with 412 (a precondition:
 * the sandbox cannot take the call now); and everything else by the kit's HTTP table.
 */
export function mapFlyError(error: unknown, context: FlyErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const { operation, sandboxId } = context;
  if (error instanceof FlyApiError) {
    const detail = error.detail;
    if ((error.status === 409 || error.status === 422) && /already (exists|been taken)|taken|unique|conflict/i.test(detail)) {
      return new SandboxAlreadyExistsError({ message: `Fly refused ${operation}: ${detail}`, provider, cause: error });
    }
    if (error.status === 408) {
      return new SandboxTimeoutError({
        message: `Fly timed out during ${operation}: ${detail}`,
        operation: 'exec',
        provider,
        cause: error,
      });
    }
    if (error.status === 412) {
      return new SandboxProviderError({
        message: `Fly refused ${operation}: the machine is not in a state to take it (HTTP 412)${detail ? `: ${detail}` : ''}`,
        provider,
        statusCode: 412,
        retryable: false,
        cause: error,
      });
    }
    return fromHttpStatus(error.status, { provider, operation, sandboxId, argument: context.argument, detail, cause: error });
  }
  const connection = fromConnectionError(error, { provider, operation, sandboxId, cause: error });
  if (connection) return connection;
  const message = error instanceof Error ? error.message : String(error);
  return new SandboxProviderError({ message: `Fly failed during ${operation}: ${message}`, provider, cause: error });
}
