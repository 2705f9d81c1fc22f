/**
 * The root of every error sandport throws on purpose.
 *
 * Check with `SandboxError.isInstance(error)` (or a subclass's `isInstance`) rather than
 * `instanceof`: the package ships ESM and CJS copies, and an app can load both. The check looks
 * for a `Symbol.for` marker, which is shared by every copy in the process.
 */

/**
 * Stable, machine-readable error codes. Never renamed within a major version. The union is open
 * (`string & {}`) so that a layer on top (the agent layer's `'agent'`, a third-party adapter's
 * own subclass) can add a code without this file knowing it; the codes listed are the ones the
 * classes in `src/errors` carry.
 */
export type SandboxErrorCode =
  | 'authentication'
  | 'sandbox_not_found'
  | 'sandbox_paused'
  | 'file_not_found'
  | 'already_exists'
  | 'timeout'
  | 'capability_unsupported'
  | 'invalid_argument'
  | 'command_exit'
  | 'provider'
  | (string & {});

const rootMarker = Symbol.for('sandport.error');

export interface SandboxErrorOptions {
  message: string;
  /** The provider's own error (SDK error, errno error, HTTP response). Always kept when there is one. */
  cause?: unknown;
  /** `SandboxProvider.id` of the provider that raised the error, when one did. */
  provider?: string;
  /** Whether repeating the same idempotent call may succeed. @default false */
  retryable?: boolean;
}

export class SandboxError extends Error {
  /** Stable code for programmatic handling. */
  readonly code: SandboxErrorCode;
  /** Provider id (`'local'`, `'modal'`, …) or `undefined` for errors raised by the core. */
  readonly provider: string | undefined;
  /** True when the same call may succeed if repeated (rate limits, 5xx, connection resets). */
  readonly retryable: boolean;
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: the cross-copy brand that isInstance reads
  private readonly [rootMarker] = true;

  constructor(code: SandboxErrorCode, options: SandboxErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SandboxError';
    this.code = code;
    this.provider = options.provider;
    this.retryable = options.retryable ?? false;
  }

  /** True for any sandport error, from any loaded copy of the package. */
  static isInstance(error: unknown): error is SandboxError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[rootMarker] === true;
  }
}

/**
 * Builds the `isInstance` check of a subclass: the root marker plus the subclass's own code,
 * so it survives duplicated class copies like the root check does.
 */
export function hasErrorCode<T extends SandboxError>(error: unknown, code: SandboxErrorCode): error is T {
  return SandboxError.isInstance(error) && error.code === code;
}
