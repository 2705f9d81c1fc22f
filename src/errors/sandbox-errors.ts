import { hasErrorCode, SandboxError, type SandboxErrorOptions } from './sandbox-error.js';

/** Credentials are missing or were refused. Thrown by `create`/`fromId` of cloud providers. Not retryable. */
export class SandboxAuthenticationError extends SandboxError {
  constructor(options: SandboxErrorOptions) {
    super('authentication', options);
    this.name = 'SandboxAuthenticationError';
  }
  static override isInstance(error: unknown): error is SandboxAuthenticationError {
    return hasErrorCode(error, 'authentication');
  }
}

/**
 * The sandbox does not exist or is no longer running: `fromId`/`fromName` of an unknown sandbox,
 * or any operation on a sandbox after it was terminated or timed out.
 */
export class SandboxNotFoundError extends SandboxError {
  /** The id or name that was looked up, when known. */
  readonly sandboxId: string | undefined;
  constructor(options: SandboxErrorOptions & { sandboxId?: string }) {
    super('sandbox_not_found', options);
    this.name = 'SandboxNotFoundError';
    this.sandboxId = options.sandboxId;
  }
  static override isInstance(error: unknown): error is SandboxNotFoundError {
    return hasErrorCode(error, 'sandbox_not_found');
  }
}

/** A file or directory that an operation needs does not exist inside the sandbox. */
export class SandboxFileNotFoundError extends SandboxError {
  /** The path as the caller gave it. */
  readonly path: string;
  constructor(options: SandboxErrorOptions & { path: string }) {
    super('file_not_found', options);
    this.name = 'SandboxFileNotFoundError';
    this.path = options.path;
  }
  static override isInstance(error: unknown): error is SandboxFileNotFoundError {
    return hasErrorCode(error, 'file_not_found');
  }
}

/** A resource with the same unique key exists already, for example a sandbox `name`. */
export class SandboxAlreadyExistsError extends SandboxError {
  constructor(options: SandboxErrorOptions) {
    super('already_exists', options);
    this.name = 'SandboxAlreadyExistsError';
  }
  static override isInstance(error: unknown): error is SandboxAlreadyExistsError {
    return hasErrorCode(error, 'already_exists');
  }
}

/**
 * One of sandport's own time limits ran out: an exec `timeoutMs`, a sandbox lifetime or idle
 * timeout. An `AbortSignal` the caller aborted never becomes this error: the call rejects with
 * `signal.reason` instead, so the two stay distinguishable.
 */
export class SandboxTimeoutError extends SandboxError {
  /** The limit that ran out, in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** What was timed: `'exec'`, `'sandbox-lifetime'`, `'sandbox-idle'`, `'create'`, … */
  readonly operation: string;
  constructor(options: SandboxErrorOptions & { timeoutMs?: number; operation: string }) {
    super('timeout', options);
    this.name = 'SandboxTimeoutError';
    this.timeoutMs = options.timeoutMs;
    this.operation = options.operation;
  }
  static override isInstance(error: unknown): error is SandboxTimeoutError {
    return hasErrorCode(error, 'timeout');
  }
}

/** The provider cannot do what was asked: an optional method it lacks, or a setting it cannot honour. */
export class SandboxCapabilityUnsupportedError extends SandboxError {
  /** Name of the capability, method or option, for example `'snapshot'` or `'network.allowDomains'`. */
  readonly capability: string;
  constructor(options: SandboxErrorOptions & { capability: string }) {
    super('capability_unsupported', options);
    this.name = 'SandboxCapabilityUnsupportedError';
    this.capability = options.capability;
  }
  static override isInstance(error: unknown): error is SandboxCapabilityUnsupportedError {
    return hasErrorCode(error, 'capability_unsupported');
  }
}

/** An option or argument is invalid. Raised before any I/O. Never retryable. */
export class SandboxInvalidArgumentError extends SandboxError {
  /** Dotted path of the offending field, for example `'memoryMiB'` or `'volumes./data.source'`. */
  readonly argument: string;
  constructor(options: SandboxErrorOptions & { argument: string }) {
    super('invalid_argument', options);
    this.name = 'SandboxInvalidArgumentError';
    this.argument = options.argument;
  }
  static override isInstance(error: unknown): error is SandboxInvalidArgumentError {
    return hasErrorCode(error, 'invalid_argument');
  }
}

/** A command exited non-zero and the caller asked for that to throw (`throwOnNonZeroExit`). */
export class CommandExitError extends SandboxError {
  readonly exitCode: number;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  constructor(options: SandboxErrorOptions & { exitCode: number; signal?: string; stdout: string; stderr: string }) {
    super('command_exit', options);
    this.name = 'CommandExitError';
    this.exitCode = options.exitCode;
    this.signal = options.signal;
    this.stdout = options.stdout;
    this.stderr = options.stderr;
  }
  static override isInstance(error: unknown): error is CommandExitError {
    return hasErrorCode(error, 'command_exit');
  }
}

/** Anything else the provider reported. `retryable` says whether an idempotent retry may help. */
export class SandboxProviderError extends SandboxError {
  /** HTTP or gRPC status when the provider gave one. */
  readonly statusCode: number | undefined;
  constructor(options: SandboxErrorOptions & { statusCode?: number }) {
    super('provider', options);
    this.name = 'SandboxProviderError';
    this.statusCode = options.statusCode;
  }
  static override isInstance(error: unknown): error is SandboxProviderError {
    return hasErrorCode(error, 'provider');
  }
}
