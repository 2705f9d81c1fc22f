import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

const provider = 'daytona';

/** What was being done when the SDK failed; the subject sharpens the mapped error. */
export interface DaytonaErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  /** A sandbox path: "not found" then means the file, not the sandbox. */
  path?: string | undefined;
  /** The option an invalid-argument answer refers to. */
  argument?: string | undefined;
}

/** The fields of the SDK's `DaytonaError` this mapping reads (its classes are recognised by `name`, so a second copy of the SDK maps the same). */
interface DaytonaErrorLike {
  name: string;
  message: string;
  statusCode?: number;
  code?: string;
}

function asDaytonaError(error: unknown): DaytonaErrorLike | undefined {
  if (!(error instanceof Error) || !error.name.startsWith('Daytona')) return undefined;
  return error as DaytonaErrorLike;
}

/**
 * Maps an error of `@daytonaio/sdk` to a sandport error, keeping the SDK's error as `cause`.
 * By class name first (the SDK's 40-odd subclasses of `DaytonaError`), then by HTTP status,
 * then connection failures (retryable); anything else is a `SandboxProviderError`.
 * A sandport error passes through unchanged.
 */
export function mapDaytonaError(error: unknown, context: DaytonaErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const cause = error;
  const { operation, sandboxId, path } = context;
  const daytona = asDaytonaError(error);
  const message = error instanceof Error ? error.message : String(error);
  if (daytona) {
    switch (daytona.name) {
      case 'DaytonaFileNotFoundError':
        return new SandboxFileNotFoundError({
          message: `No such file or directory in the sandbox: ${path ?? message}`,
          path: path ?? '',
          provider,
          cause,
        });
      case 'DaytonaAuthenticationError':
      case 'DaytonaAuthorizationError':
      case 'DaytonaForbiddenError':
        return new SandboxAuthenticationError({
          message: `Daytona refused the credentials during ${operation}: ${message}`,
          provider,
          cause,
        });
      case 'DaytonaTimeoutError':
      case 'DaytonaProcessExecutionTimeoutError':
        return new SandboxTimeoutError({ message: `Daytona timed out during ${operation}: ${message}`, operation, provider, cause });
      case 'DaytonaSessionEndedError':
      case 'DaytonaCommandAlreadyCompletedError':
      case 'DaytonaProcessNotFoundError':
        return new SandboxNotFoundError({
          message: `The command is no longer running in sandbox ${sandboxId ?? ''}: ${message}`,
          sandboxId,
          provider,
          cause,
        });
      case 'DaytonaConnectionError':
      case 'DaytonaConnectionTimeoutError':
        return new SandboxProviderError({
          message: `The connection to Daytona failed during ${operation}: ${message}`,
          provider,
          retryable: true,
          cause,
        });
      case 'DaytonaInvalidFilePathError':
        return new SandboxInvalidArgumentError({
          message: `Cannot ${operation} ${path ?? ''}: ${message}`,
          argument: 'path',
          provider,
          cause,
        });
      case 'DaytonaInvalidArgumentError':
      case 'DaytonaValidationError':
        if (daytona.statusCode === undefined)
          return new SandboxInvalidArgumentError({
            message: `Daytona refused ${operation}: ${message}`,
            argument: context.argument ?? operation,
            provider,
            cause,
          });
        break;
      default:
        break;
    }
    const status = daytona.statusCode;
    if (status !== undefined && status >= 400) {
      // A file call's 404 is the file; a 409 at create is the name taken; 410 is a sandbox gone.
      if (status === 409 && path === undefined)
        return new SandboxAlreadyExistsError({ message: `Daytona: ${message} (during ${operation})`, provider, cause });
      if ((status === 400 || status === 500) && path !== undefined && /no such file|not found|does not exist/i.test(message))
        return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider, cause });
      return fromHttpStatus(status, { provider, operation, sandboxId, path, argument: context.argument, detail: message, cause });
    }
  }
  const connection = fromConnectionError(error, { provider, operation, sandboxId, detail: message, cause });
  if (connection) return connection;
  return new SandboxProviderError({ message: `Daytona failed during ${operation}: ${message}`, provider, cause });
}
