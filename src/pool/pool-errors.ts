import { hasErrorCode, SandboxError, type SandboxErrorCode, type SandboxErrorOptions } from '../errors/sandbox-error.js';

/** The `SandboxErrorCode` of `SandboxPoolClosedError`. The root union gains `'pool_closed'` with this class. */
export const poolClosedErrorCode: SandboxErrorCode = 'pool_closed';

/**
 * The pool was closed: `acquire` after `close()`, or an `acquire` still waiting (on a creation
 * or a health check) when `close()` began. Not retryable on the same pool.
 */
export class SandboxPoolClosedError extends SandboxError {
  constructor(options: SandboxErrorOptions) {
    super(poolClosedErrorCode, options);
    this.name = 'SandboxPoolClosedError';
  }

  /** True for this error from any loaded copy of the package (ESM and CJS alike). */
  static override isInstance(error: unknown): error is SandboxPoolClosedError {
    return hasErrorCode(error, poolClosedErrorCode);
  }
}
