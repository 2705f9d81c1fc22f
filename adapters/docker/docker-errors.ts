import {
  SandboxAlreadyExistsError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
} from '../../src/kit/index.js';

/** The shape of errors from docker-modem (dockerode's transport). */
interface EngineError {
  statusCode?: number;
  reason?: string;
  message?: string;
  code?: string;
  json?: { message?: string } | string | null;
}

function engineMessage(error: EngineError): string {
  const json = typeof error.json === 'object' && error.json ? error.json.message : typeof error.json === 'string' ? error.json : undefined;
  return (json ?? error.message ?? error.reason ?? 'unknown engine error').toString().trim();
}

/**
 * Maps Docker Engine errors to sandport errors, keeping the engine's error as `cause`.
 * `context` says what was being done; `subject` names the sandbox, file or image concerned.
 */
export function mapDockerError(
  error: unknown,
  context: { operation: string; sandboxId?: string; path?: string; image?: string },
): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const engine = (error ?? {}) as EngineError;
  const message = engineMessage(engine);
  const provider = 'docker';
  const cause = error;
  if (engine.code === 'ECONNREFUSED' || engine.code === 'ENOENT' || engine.code === 'EACCES') {
    return new SandboxProviderError({
      message: `The Docker engine is unreachable (${engine.code}) during ${context.operation}: is dockerd running and is its socket accessible?`,
      provider,
      retryable: engine.code === 'ECONNREFUSED',
      cause,
    });
  }
  if (engine.code === 'ECONNRESET' || engine.code === 'EPIPE') {
    return new SandboxProviderError({ message: `Connection to the Docker engine lost during ${context.operation}`, provider, retryable: true, cause });
  }
  const status = engine.statusCode;
  if (status === 404) {
    // The archive endpoints answer 404 "no such container" for a missing path too; the
    // message is the only way to tell the two apart.
    const containerGone = /no such container/i.test(message) && !/could not find the file|no such file/i.test(message);
    if (context.path !== undefined && !containerGone) {
      return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${context.path}`, path: context.path, provider, cause });
    }
    if (context.image !== undefined && /image/i.test(message)) {
      return new SandboxInvalidArgumentError({ message: `Image ${context.image} is not available to the engine: ${message}`, argument: 'image', provider, cause });
    }
    return new SandboxNotFoundError({ message: `Sandbox ${context.sandboxId ?? ''} not found: ${message}`, sandboxId: context.sandboxId, provider, cause });
  }
  if (status === 409) {
    if (/is not running|is paused|removal .* in progress|is restarting/i.test(message)) {
      return new SandboxNotFoundError({ message: `Sandbox ${context.sandboxId ?? ''} is no longer running: ${message}`, sandboxId: context.sandboxId, provider, cause });
    }
    return new SandboxAlreadyExistsError({ message: `Conflict during ${context.operation}: ${message}`, provider, cause });
  }
  if (status === 400) {
    return new SandboxInvalidArgumentError({ message: `The engine refused ${context.operation}: ${message}`, argument: context.operation, provider, cause });
  }
  return new SandboxProviderError({
    message: `Docker engine error during ${context.operation}${status ? ` (HTTP ${status})` : ''}: ${message}`,
    provider,
    statusCode: status,
    retryable: status !== undefined && status >= 500 && status !== 501,
    cause,
  });
}
