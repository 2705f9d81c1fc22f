import { SandboxError, SandboxProviderError } from '../../src/kit/index.js';

/**
 * Maps host failures (errno errors from file system calls, launcher reports) to sandport errors,
 * keeping the original as `cause`. Errors that already are sandport errors pass through.
 */
export function mapLocalError(error: unknown, context: string): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // EAGAIN/EBUSY on cgroup and mount operations clear up on their own under load.
  const retryable = code === 'EAGAIN' || code === 'EBUSY';
  const detail = error instanceof Error ? error.message : String(error);
  return new SandboxProviderError({ message: `${context}: ${detail}`, provider: 'local', retryable, cause: error });
}
