import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
  grpcStatus,
} from '../../src/kit/index.js';

/** What was being done when the SDK failed; the subject sharpens the mapped error. */
export interface ModalErrorContext {
  operation: string;
  sandboxId?: string;
  path?: string;
}

// The SDK's raw `ClientError`s carry nice-grpc's `Status` numbers: the kit's `grpcStatus` table.

const retryableStatuses = new Set<number>([
  grpcStatus.cancelled,
  grpcStatus.unknown,
  grpcStatus.internal,
  grpcStatus.unavailable,
  grpcStatus.resourceExhausted,
]);

/**
 * Maps an error of the `modal` SDK to a sandport error, keeping the SDK's error as `cause`.
 * The SDK's classes are recognised by `name` (each sets it), so a second copy of the SDK in the
 * tree maps the same. Raw nice-grpc `ClientError`s, which the SDK lets through for codes it does
 * not translate, are mapped by gRPC status.
 */
export function mapModalError(error: unknown, context: ModalErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const provider = 'modal';
  const cause = error;
  const { operation, sandboxId, path } = context;
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : String(error);
  const fileError = (argument: string, detail: string) =>
    new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path ?? ''}: ${detail}`, argument, provider, cause });

  switch (name) {
    case 'SandboxFilesystemNotFoundError':
      return new SandboxFileNotFoundError({
        message: `No such file or directory in the sandbox: ${path ?? message}`,
        path: path ?? '',
        provider,
        cause,
      });
    case 'SandboxFilesystemIsADirectoryError':
      return fileError('path', 'it is a directory');
    case 'SandboxFilesystemNotADirectoryError':
      return fileError('path', 'a path component is not a directory');
    case 'SandboxFilesystemDirectoryNotEmptyError':
      return fileError('path', 'the directory is not empty (pass recursive: true)');
    case 'SandboxFilesystemPathAlreadyExistsError':
      return fileError('path', 'the path exists already');
    case 'SandboxFilesystemPermissionError':
    case 'SandboxFilesystemFileTooLargeError':
    case 'SandboxFilesystemError':
      return new SandboxProviderError({ message: `${operation} ${path ?? ''} failed: ${message}`, provider, cause });
    case 'NotFoundError':
    case 'ClientClosedError':
      return new SandboxNotFoundError({
        message: `Sandbox ${sandboxId ?? ''} not found or no longer running: ${message}`,
        sandboxId,
        provider,
        cause,
      });
    case 'ConflictError':
      // The SDK raises it for a sandbox that finished before it could be reached.
      return new SandboxNotFoundError({
        message: `Sandbox ${sandboxId ?? ''} is no longer running: ${message}`,
        sandboxId,
        provider,
        cause,
      });
    case 'AlreadyExistsError':
      return new SandboxAlreadyExistsError({ message: `${operation}: ${message}`, provider, cause });
    case 'InvalidError':
      return new SandboxInvalidArgumentError({
        message: `Modal refused ${operation}: ${message}`,
        argument: invalidArgumentOf(operation, message),
        provider,
        cause,
      });
    case 'SandboxTimeoutError':
    case 'TimeoutError':
      return new SandboxTimeoutError({ message: `Modal timed out during ${operation}: ${message}`, operation, provider, cause });
    case 'ResourceExhaustedError':
    case 'InternalFailure':
      return new SandboxProviderError({ message: `Modal could not complete ${operation}: ${message}`, provider, retryable: true, cause });
  }
  if (/Profile is missing credentials/.test(message)) {
    return new SandboxAuthenticationError({
      message: `Modal credentials are missing: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, a ~/.modal.toml profile, or pass tokenId/tokenSecret`,
      provider,
      cause,
    });
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (name === 'ClientError' && typeof code === 'number') {
    const details = (error as { details?: string }).details ?? message;
    switch (code) {
      case grpcStatus.notFound:
        return new SandboxNotFoundError({
          message: `Sandbox ${sandboxId ?? ''} not found during ${operation}: ${details}`,
          sandboxId,
          provider,
          cause,
        });
      case grpcStatus.alreadyExists:
        return new SandboxAlreadyExistsError({ message: `${operation}: ${details}`, provider, cause });
      case grpcStatus.invalidArgument:
        return new SandboxInvalidArgumentError({
          message: `Modal refused ${operation}: ${details}`,
          argument: invalidArgumentOf(operation, details),
          provider,
          cause,
        });
      case grpcStatus.unauthenticated:
      case grpcStatus.permissionDenied:
        return new SandboxAuthenticationError({
          message: `Modal refused the credentials during ${operation}: ${details}`,
          provider,
          cause,
        });
      case grpcStatus.deadlineExceeded:
        return new SandboxTimeoutError({ message: `Modal timed out during ${operation}: ${details}`, operation, provider, cause });
    }
    return new SandboxProviderError({
      message: `Modal error during ${operation} (gRPC ${code}): ${details}`,
      provider,
      statusCode: code,
      retryable: retryableStatuses.has(code),
      cause,
    });
  }
  return new SandboxProviderError({ message: `Modal error during ${operation}: ${message}`, provider, cause });
}

/**
 * An `updateNetworkPolicy` refusal as the contract's (pure): UNIMPLEMENTED (the service does not
 * make that change, as Modal's emulator for changes its local sandboxes cannot make) is
 * `SandboxCapabilityUnsupportedError` with capability `network.update`; anything else as mapped.
 */
export function mapModalNetworkUpdateError(mapped: SandboxError): SandboxError {
  if (!SandboxProviderError.isInstance(mapped) || mapped.statusCode !== grpcStatus.unimplemented) return mapped;
  return new SandboxCapabilityUnsupportedError({
    message: `Modal cannot make this network change (gRPC UNIMPLEMENTED): ${mapped.message}`,
    capability: 'network.update',
    provider: 'modal',
    cause: mapped.cause,
  });
}

/** The `error_kind` Modal's file tool reports in its JSON error line (`IsDirectory`, `NotFound`, …). */
export function fileToolErrorKind(stderr: string): string | undefined {
  return /"error_kind"\s*:\s*"(\w+)"/.exec(stderr)?.[1];
}

/** The option an `InvalidError` is about, when its message says (an entrypoint that does not exist names `command`). */
function invalidArgumentOf(operation: string, message: string): string {
  if (operation === 'create' && /command not found|no such file or directory|executable file not found/i.test(message)) return 'command';
  if (/\bimage\b/i.test(message)) return 'image';
  return operation;
}
