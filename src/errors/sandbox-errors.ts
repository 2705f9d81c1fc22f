import { hasErrorCode, SandboxError, type SandboxErrorOptions } from './sandbox-error.js';

/**
 * What a `SandboxCapabilityUnsupportedError` is about: a path into `SandboxCapabilities` (a
 * flag that is false or a value the provider lacks), or `providerOptions.<provider>.<field>` for
 * a provider setting the host cannot honour. Branch on these; the union stays open
 * (`string & {}`) for capabilities a newer provider adds.
 */
export type SandboxCapabilityPath =
  | 'snapshot'
  | 'deleteSnapshot'
  | 'extendTimeout'
  | 'fromName'
  | 'list'
  | 'tags'
  | 'tunnels'
  | 'hostRoutes'
  | 'gpu'
  | 'volumes'
  | 'network.block'
  | 'network.allowCidrs'
  | 'network.allowDomains'
  | 'network.update'
  | 'limits.cpu'
  | 'limits.memory'
  | 'limits.pids'
  | 'exec.stdin'
  | 'exec.stdinEof'
  | 'exec.kill'
  | 'exec.signals'
  | 'exec.pty'
  | 'files.watch'
  | 'entrypointStdio'
  | 'pause'
  | 'timeouts.lifetime'
  | 'timeouts.idle'
  | 'images.reference'
  | 'images.build'
  | 'images.snapshot'
  | `providerOptions.${string}`;

/** `SandboxCapabilityPath`, kept open for names not listed yet. */
export type SandboxCapabilityName = SandboxCapabilityPath | (string & {});

/**
 * What a `SandboxTimeoutError` timed:
 * - `'exec'`: an exec's own `timeoutMs` (the process tree was killed);
 * - `'create'`: a sandbox did not become ready in time;
 * - `'sandbox-lifetime'`, `'sandbox-idle'`: the sandbox's `timeoutMs` or `idleTimeoutMs` ended it
 *   under a running operation;
 * - `'agent-start'`, `'agent-turn'`: the agent layer's CLI start and turn limits;
 * - otherwise the name of the provider operation that timed out on the provider's side
 *   (`'fromName'`, `'write'`, …). The union stays open for those.
 */
export type SandboxTimeoutOperation =
  | 'exec'
  | 'create'
  | 'sandbox-lifetime'
  | 'sandbox-idle'
  | 'agent-start'
  | 'agent-turn'
  | (string & {});

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
 * or any operation on a sandbox after it was terminated or timed out (except `terminate`,
 * `poll` and `wait`, which report the end instead). Not retryable.
 */
export class SandboxNotFoundError extends SandboxError {
  /**
   * The id that was looked up or of the sandbox that is gone, when known. Older adapters also
   * put a `fromName` name here; read `name` for that.
   */
  readonly sandboxId: string | undefined;
  /**
   * The sandbox name looked up by `fromName` (the constructor's `name` option), when the lookup
   * was by name. Not `name`: on an `Error` that is the class name.
   */
  readonly sandboxName: string | undefined;
  constructor(options: SandboxErrorOptions & { sandboxId?: string /** The name looked up by `fromName`. */; name?: string }) {
    super('sandbox_not_found', options);
    this.name = 'SandboxNotFoundError';
    this.sandboxId = options.sandboxId;
    this.sandboxName = options.name;
  }
  static override isInstance(error: unknown): error is SandboxNotFoundError {
    return hasErrorCode(error, 'sandbox_not_found');
  }
}

/**
 * The sandbox is paused (`Sandbox.pause()`): everything but `resume`, `terminate`, `poll`,
 * `wait`, `getTags` and `setTags` is refused until `resume()`; nothing is resumed behind the
 * caller's back (resuming costs time and, on cloud providers, money). Not retryable.
 */
export class SandboxPausedError extends SandboxError {
  /** The paused sandbox. */
  readonly sandboxId: string;
  constructor(options: SandboxErrorOptions & { sandboxId: string }) {
    super('sandbox_paused', options);
    this.name = 'SandboxPausedError';
    this.sandboxId = options.sandboxId;
  }
  static override isInstance(error: unknown): error is SandboxPausedError {
    return hasErrorCode(error, 'sandbox_paused');
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
  /** The limit that ran out, in milliseconds, when sandport set it (`undefined` for a provider-side timeout). */
  readonly timeoutMs: number | undefined;
  /** What was timed (see `SandboxTimeoutOperation`): `'exec'`, `'create'`, `'agent-turn'`, … */
  readonly operation: SandboxTimeoutOperation;
  constructor(options: SandboxErrorOptions & { timeoutMs?: number; operation: SandboxTimeoutOperation }) {
    super('timeout', options);
    this.name = 'SandboxTimeoutError';
    this.timeoutMs = options.timeoutMs;
    this.operation = options.operation;
  }
  static override isInstance(error: unknown): error is SandboxTimeoutError {
    return hasErrorCode(error, 'timeout');
  }
}

/**
 * The provider cannot do what was asked: an optional method it lacks, or a setting it cannot
 * honour (security settings always end here, never in a silent no-op). Not retryable.
 */
export class SandboxCapabilityUnsupportedError extends SandboxError {
  /**
   * The capability, as a path into `SandboxCapabilities` (`'snapshot'`, `'network.allowDomains'`,
   * `'limits.pids'`) or `providerOptions.<provider>.<field>`. See `SandboxCapabilityPath`.
   */
  readonly capability: SandboxCapabilityName;
  constructor(options: SandboxErrorOptions & { capability: SandboxCapabilityName }) {
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
  /**
   * Dotted path of the offending field (`'memoryMiB'`, `'volumes./data'`, `'network.allowCidrs.0'`),
   * or the name of the positional argument (`'path'`, `'data'`, `'signal'`, `'tags'`,
   * `'command'`). Never an operation name.
   */
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
