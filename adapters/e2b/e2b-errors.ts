import {
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

/** What was being done when the SDK failed; the subject sharpens the mapped error. */
export interface E2bErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  path?: string | undefined;
}

const provider = 'e2b';

/**
 * Maps an error of the `e2b` SDK to a sandport error, keeping the SDK's error as `cause`. The
 * SDK's classes are recognised by `name` (each sets it), so a second copy of the SDK in the tree
 * maps the same. The traps: the SDK reports a sandbox that is gone as `TimeoutError` ("the
 * sandbox was killed or reached its end of life") or a 502 from envd, a missing file as
 * `NotFoundError` (deprecated class, still thrown by envd's REST calls), and 503 and 401 as
 * classes outside its `SandboxError` family.
 */
export function mapE2bError(error: unknown, context: E2bErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const cause = error;
  const { operation, sandboxId, path } = context;
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode;
  const gone = () =>
    new SandboxNotFoundError({
      message: `Sandbox ${sandboxId ?? ''} not found or no longer running (${operation}): ${message}`,
      sandboxId,
      provider,
      cause,
    });

  switch (name) {
    case 'FileNotFoundError':
      return new SandboxFileNotFoundError({
        message: `No such file or directory in the sandbox: ${path ?? message}`,
        path: path ?? '',
        provider,
        cause,
      });
    case 'SandboxNotFoundError':
      return gone();
    case 'NotFoundError':
      // envd answers 404 for a path; the control plane for a sandbox.
      if (path !== undefined)
        return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider, cause });
      return gone();
    case 'InvalidArgumentError':
      return new SandboxInvalidArgumentError({
        message: `E2B refused ${operation}${path === undefined ? '' : ` ${path}`}: ${message}`,
        argument: invalidArgumentOf(operation, message, path),
        provider,
        cause,
      });
    case 'AuthenticationError':
      return new SandboxAuthenticationError({
        message: `E2B refused the credentials during ${operation} (set E2B_API_KEY or pass apiKey): ${message}`,
        provider,
        cause,
      });
    case 'TimeoutError':
      // What the SDK says for a request to a sandbox that is gone (envd unavailable, or the
      // connection dropped and the health probe found it dead); any other timeout is a timeout.
      if (/end of life|not running anymore|sandbox timeout|was killed/i.test(message)) return gone();
      return new SandboxTimeoutError({ message: `E2B timed out during ${operation}: ${message}`, operation, provider, cause });
    case 'RateLimitError':
      return new SandboxProviderError({
        message: `E2B rate-limited ${operation}: ${message}`,
        provider,
        statusCode: 429,
        retryable: true,
        cause,
      });
    case 'ServiceBusyError':
      return new SandboxProviderError({
        message: `E2B is busy (${operation}): ${message}`,
        provider,
        statusCode: 503,
        retryable: true,
        cause,
      });
    case 'NotEnoughSpaceError':
      return new SandboxProviderError({
        message: `The sandbox ran out of disk space during ${operation}: ${message}`,
        provider,
        statusCode: 507,
        cause,
      });
    case 'TemplateError':
      return new SandboxProviderError({ message: `E2B template problem during ${operation}: ${message}`, provider, cause });
    case 'BuildError':
    case 'FileUploadError':
      return new SandboxProviderError({ message: `Building the E2B template failed: ${message}`, provider, cause });
    case 'CommandExitError':
      // The adapter never lets the SDK throw on an exit code; one reaching here is a bug of the caller's own SDK use.
      return new SandboxProviderError({
        message: `${operation}: a command exited with ${(error as { exitCode?: number }).exitCode}`,
        provider,
        cause,
      });
  }
  if (typeof statusCode === 'number') {
    if (statusCode === 502) return gone();
    if (statusCode === 404 && path !== undefined)
      return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider, cause });
    if (statusCode === 409 && /paused|not running/i.test(message)) return gone();
    return fromHttpStatus(statusCode, { provider, operation, detail: message, sandboxId, path, cause });
  }
  // The SDK's messages keep the envd status code at the front (`404: …`) when it has no class for it.
  const coded = /^(\d{3}): /.exec(message);
  if (name === 'SandboxError' && coded) {
    const code = Number(coded[1]);
    if (code === 502) return gone();
    return fromHttpStatus(code, { provider, operation, detail: message, sandboxId, path, cause });
  }
  const connection = fromConnectionError(error, { provider, operation, detail: message, cause });
  if (connection) return connection;
  return new SandboxProviderError({ message: `E2B error during ${operation}: ${message}`, provider, cause });
}

/**
 * An `updateNetwork` refusal as the contract's (pure): the service answering 501 (it does not
 * make that change, as E2B's emulator for changes its local sandboxes cannot make) is
 * `SandboxCapabilityUnsupportedError` with capability `network.update`; anything else as mapped.
 */
export function mapE2bNetworkUpdateError(mapped: SandboxError): SandboxError {
  if (!SandboxProviderError.isInstance(mapped) || mapped.statusCode !== 501) return mapped;
  return new SandboxCapabilityUnsupportedError({
    message: `E2B cannot make this network change (HTTP 501): ${mapped.message}`,
    capability: 'network.update',
    provider,
    cause: mapped.cause,
  });
}

/** The option an `InvalidArgumentError` is about, when it can be told. */
function invalidArgumentOf(operation: string, message: string, path: string | undefined): string {
  if (path !== undefined) return 'path';
  if (/template/i.test(message)) return 'image';
  if (/timeout/i.test(message)) return 'timeoutMs';
  if (/metadata/i.test(message)) return 'tags';
  return operation;
}
