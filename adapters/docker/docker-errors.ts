/**
 * Docker Engine errors → sandport errors: the engine's own message rules first (they say more
 * than the status), then the kit's HTTP and connection tables. Every regex over an engine message
 * lives here.
 */
import {
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxPausedError,
  SandboxProviderError,
  errorCode,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

/** The shape of errors from docker-modem (dockerode's transport). */
interface EngineError {
  statusCode?: number;
  reason?: string;
  message?: string;
  code?: string;
  json?: { message?: string } | string | null;
}

/** What was being done, and on what: the subject sharpens the mapped error. */
export interface DockerErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  /** A sandbox path: a 404 then means the file, unless the engine says the container is gone. */
  path?: string | undefined;
  image?: string | undefined;
  /**
   * The call was a HEAD request on a container known to run: the answer has no body, so the
   * engine's 404 text ("no such container") cannot tell a missing path from a missing container.
   */
  pathOnly?: boolean;
}

const provider = 'docker';

/** The engine's message for an error (its JSON body, else the transport's message). */
export function engineMessage(error: unknown): string {
  const engine = (error ?? {}) as EngineError;
  const json =
    typeof engine.json === 'object' && engine.json ? engine.json.message : typeof engine.json === 'string' ? engine.json : undefined;
  return (json ?? engine.message ?? engine.reason ?? 'unknown engine error').toString().trim();
}

/** The HTTP status of an engine error, if it has one. */
export function engineStatus(error: unknown): number | undefined {
  const status = (error as EngineError | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Codes that mean no engine answers at this address at all (as opposed to a dropped connection). */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES']);

/**
 * Maps Docker Engine errors to sandport errors, keeping the engine's error as `cause`.
 * `context` says what was being done; `sandboxId`, `path` or `image` name the subject.
 */
export function mapDockerError(error: unknown, context: DockerErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const message = engineMessage(error);
  const cause = error;
  const code = errorCode(error);
  const status = engineStatus(error);
  if (status === undefined && code !== undefined && unreachableCodes.has(code)) {
    return new SandboxProviderError({
      message: `The Docker engine is unreachable (${code}) during ${context.operation}: is dockerd running and is its socket accessible?`,
      provider,
      retryable: code === 'ECONNREFUSED',
      cause,
    });
  }
  if (status === undefined) {
    const connection = fromConnectionError(error, { provider, operation: context.operation, detail: message, cause });
    if (connection) return connection;
    return new SandboxProviderError({ message: `Docker engine error during ${context.operation}: ${message}`, provider, cause });
  }
  const table = { provider, operation: context.operation, sandboxId: context.sandboxId, detail: message, cause };
  if (status === 404) {
    // The archive endpoints answer 404 "no such container" for a missing path too; the
    // message is the only way to tell the two apart.
    const containerGone = !context.pathOnly && /no such container/i.test(message) && !/could not find the file|no such file/i.test(message);
    if (context.path !== undefined && !containerGone) {
      return new SandboxFileNotFoundError({
        message: `No such file or directory in the sandbox: ${context.path}`,
        path: context.path,
        provider,
        cause,
      });
    }
    if (context.image !== undefined && /image/i.test(message)) {
      return new SandboxInvalidArgumentError({
        message: `Image ${context.image} is not available to the engine: ${message}`,
        argument: 'image',
        provider,
        cause,
      });
    }
    return new SandboxNotFoundError({
      message: `Sandbox ${context.sandboxId ?? ''} not found: ${message}`,
      sandboxId: context.sandboxId,
      provider,
      cause,
    });
  }
  if (status === 409 && /is paused/i.test(message)) {
    // Paused by another process (or by `docker pause`): it is still there, and resume() continues it.
    return new SandboxPausedError({
      message: `Sandbox ${context.sandboxId ?? ''} is paused: ${message}`,
      sandboxId: context.sandboxId ?? '',
      provider,
      cause,
    });
  }
  if (status === 409 && /is not running|removal .* in progress|is restarting|is dead|marked for removal/i.test(message)) {
    return new SandboxNotFoundError({
      message: `Sandbox ${context.sandboxId ?? ''} is no longer running: ${message}`,
      sandboxId: context.sandboxId,
      provider,
      cause,
    });
  }
  if (status === 400 && isMountRefusal(message)) {
    return new SandboxInvalidArgumentError({ message: `volumes: ${message}`, argument: 'volumes', provider, cause });
  }
  return fromHttpStatus(status, table);
}

/** The engine refused a mount (a bind of a missing host path, a malformed mount). */
function isMountRefusal(message: string): boolean {
  return /bind source path does not exist|invalid mount config/i.test(message);
}

/** Whether a mapped error says the file is missing (for callers that retry after a mkdir). */
export function isFileNotFound(error: unknown): boolean {
  return SandboxError.isInstance(error) && error.code === 'file_not_found';
}

/** Whether an engine error is a 404 (a missing image, network or snapshot). */
export function isEngineNotFound(error: unknown): boolean {
  return engineStatus(error) === 404;
}

/** Whether an engine error is a 409 (a network or name someone else created first). */
export function isEngineConflict(error: unknown): boolean {
  return engineStatus(error) === 409;
}
