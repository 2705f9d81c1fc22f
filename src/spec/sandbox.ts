/**
 * The contract every provider implements. Providers are plug-ins: `adapters/<name>` exports a
 * `SandboxProvider`; apps and `AgentSession` only ever see these types.
 *
 * Conventions that hold for every member below:
 * - every async method takes `signal?: AbortSignal`; an aborted call rejects with `signal.reason`
 *   (not a `SandboxError`) and releases what it started;
 * - errors are `SandboxError` subclasses with the provider's own error kept as `cause`;
 * - idempotent calls are retried on transient provider errors; the others never are.
 */
import type { SandboxCapabilities } from './sandbox-capabilities.js';
import type {
  Command,
  CreateSandboxOptions,
  ExecOptions,
  ListSandboxesOptions,
  RunOptions,
  SandboxSnapshotRef,
  SignalOptions,
} from './options.js';
import type { SandboxEmitter, SandboxWarning } from './events.js';

export interface SandboxProvider {
  /** Version of this contract the provider implements. */
  readonly specificationVersion: 'sandbox-v1';
  /** Short stable id, kebab-case: `'local'`, `'docker'`, `'modal'`, … */
  readonly id: string;
  readonly capabilities: SandboxCapabilities;
  /** Events of every sandbox this provider creates or finds. */
  readonly events: SandboxEmitter;

  /**
   * Creates a sandbox and resolves when it is ready to `exec`.
   * Not idempotent (never retried). Throws `SandboxInvalidArgumentError` for a bad option (before
   * any I/O), `SandboxAlreadyExistsError` for a taken `name`, `SandboxCapabilityUnsupportedError`
   * for a security setting the provider cannot honour.
   */
  create(options?: CreateSandboxOptions): Promise<Sandbox>;
  /** Attaches to a running sandbox by id. Idempotent. Throws `SandboxNotFoundError`. */
  fromId(id: string, options?: SignalOptions): Promise<Sandbox>;
  /** Attaches to a running sandbox by `name`. Idempotent. Throws `SandboxNotFoundError`. */
  fromName?(name: string, options?: SignalOptions): Promise<Sandbox>;
  /** Running sandboxes, optionally only those carrying every tag given. Idempotent. */
  list?(options?: ListSandboxesOptions): Promise<SandboxInfo[]>;
  /**
   * Deletes a snapshot made by `Sandbox.snapshot()`. Sandboxes already started from it are
   * unaffected. Idempotent: deleting a deleted snapshot resolves.
   */
  deleteSnapshot?(snapshot: SandboxSnapshotRef, options?: SignalOptions): Promise<void>;
}

export interface SandboxInfo {
  readonly id: string;
  readonly name: string | undefined;
  readonly tags: Readonly<Record<string, string>>;
  /** Milliseconds since the Unix epoch. */
  readonly createdAt: number;
}

/** Where a sandbox is in its life. `exitCode` is the entrypoint's, when it had one. */
export type SandboxStatus =
  | { readonly state: 'running' }
  | { readonly state: 'terminated'; readonly reason: SandboxEndReason; readonly exitCode?: number };

export type SandboxEndReason = 'terminated' | 'lifetime-timeout' | 'idle-timeout' | 'entrypoint-exited' | 'crashed';

export interface Sandbox extends AsyncDisposable {
  /** Provider-assigned id, accepted by `provider.fromId`. */
  readonly id: string;
  /** `SandboxProvider.id` of the provider that made it. */
  readonly provider: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  /** Settings the provider adjusted at create (never security settings: those throw). */
  readonly warnings: readonly SandboxWarning[];

  /**
   * Starts a command and resolves once it runs, with its streams. Not idempotent.
   * A string runs through `sh -c`; an argv array passes through unchanged.
   * Throws `SandboxInvalidArgumentError` when the program or the `cwd` does not exist,
   * `SandboxNotFoundError` when the sandbox is gone. A non-zero exit is not an error.
   */
  exec(command: Command, options?: ExecOptions): Promise<SandboxProcess>;
  /**
   * Runs a command to completion and buffers its output (derived from `exec`).
   * Throws like `exec`, plus `SandboxTimeoutError` after `timeoutMs` (the process tree is killed
   * first) and `CommandExitError` on a non-zero exit when `throwOnNonZeroExit` is set.
   */
  run(command: Command, options?: RunOptions): Promise<ExecResult>;

  /**
   * Host-reachable URLs of the ports declared at create, keyed by sandbox port. Idempotent.
   * Throws `SandboxCapabilityUnsupportedError` when the provider has no tunnels.
   */
  tunnels(options?: SignalOptions): Promise<Record<number, Tunnel>>;
  /**
   * Captures the sandbox's filesystem; pass the result as `image` to `create`. The sandbox
   * keeps running and is unchanged. Present when `capabilities.snapshot`.
   */
  snapshot?(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /** Replaces the sandbox's tags. Idempotent. */
  setTags(tags: Record<string, string>, options?: SignalOptions): Promise<void>;
  /** The sandbox's tags. Idempotent. */
  getTags(options?: SignalOptions): Promise<Record<string, string>>;
  /** Pushes the lifetime deadline to `timeoutMs` from now. Present when `capabilities.extendTimeout`. */
  extendTimeout?(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /** Current status, without waiting. Idempotent. */
  poll(options?: SignalOptions): Promise<SandboxStatus>;
  /** Resolves when the sandbox has ended, with why. Idempotent. */
  wait(options?: SignalOptions): Promise<Extract<SandboxStatus, { state: 'terminated' }>>;
  /**
   * Stops every process and releases everything the sandbox held (for the local provider: its
   * processes, cgroups, network helpers and directory). Idempotent: a second call, or a call on
   * a sandbox that timed out, resolves.
   */
  terminate(options?: SignalOptions): Promise<void>;
}

export interface Tunnel {
  /** Sandbox port the tunnel reaches. */
  readonly port: number;
  /** Base URL, `http://host:port` or `https://…`. */
  readonly url: string;
  readonly host: string;
  /** Port to connect to on `host`. */
  readonly hostPort: number;
  readonly encrypted: boolean;
}

export interface ExecResult {
  /** Exit status; 128 + n when the process was killed by signal n (shell convention). */
  readonly exitCode: number;
  /** Name of the signal that killed the process, when one did (`'SIGKILL'`). */
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** True when `maxOutputBytes` cut stdout or stderr. */
  readonly truncated: boolean;
}

/** How a command ended. */
export interface ExitStatus {
  /** Exit status; 128 + n when killed by signal n. */
  readonly exitCode: number;
  /** Name of the signal that killed the command, when one did. */
  readonly signal: string | undefined;
  /** Present and true when the provider knows the command was killed for exceeding `memoryMiB`. */
  readonly oomKilled?: boolean;
}

/** A running command. Dispose (or `kill`) to stop it. */
export interface SandboxProcess extends AsyncDisposable {
  /** Write then `close()` for EOF. Backpressure: `write` resolves when the sandbox took the data. */
  readonly stdin: WritableStream<Uint8Array>;
  /** Pull-based: an unread stream stalls the command once the pipe buffer is full, never the host. */
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * Resolves when the command has exited. Idempotent. Rejects with `SandboxTimeoutError` when
   * the exec's `timeoutMs` ran out (the tree is killed first), with `signal.reason` when the
   * exec's signal aborted, and with `SandboxNotFoundError` when the sandbox died under it.
   */
  wait(): Promise<ExitStatus>;
  /** Signals the command and its whole process tree. @default 'SIGKILL'. Idempotent. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Metadata of a path inside the sandbox. */
export interface FileInfo {
  readonly name: string;
  /** Absolute path inside the sandbox. */
  readonly path: string;
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  /** Bytes. */
  readonly size: number;
  /** Permission bits, for example `0o644`. */
  readonly mode: number;
  /** Milliseconds since the Unix epoch. */
  readonly modifiedAt: number;
  /** Target of a symlink, as stored in the link. */
  readonly linkTarget?: string;
}

/**
 * The sandbox's filesystem, seen from inside it: paths are absolute sandbox paths and symlinks
 * resolve inside the sandbox, never on the host. Missing paths throw `SandboxFileNotFoundError`.
 * Reads are idempotent; writes replace the file whole.
 */
export interface SandboxFiles {
  read(path: string, options?: SignalOptions): Promise<Uint8Array>;
  readText(path: string, options?: SignalOptions): Promise<string>;
  /** Streams the file; nothing is buffered beyond the stream's queue. */
  readStream(path: string, options?: SignalOptions): Promise<ReadableStream<Uint8Array>>;
  /** Creates or replaces a file (parent directories are created). A stream is written as it arrives. */
  write(
    path: string,
    data: string | Uint8Array | ReadableStream<Uint8Array>,
    options?: SignalOptions & { mode?: number },
  ): Promise<void>;
  /** Entries of a directory, sorted by name. */
  list(path: string, options?: SignalOptions): Promise<FileInfo[]>;
  /** Metadata of a path; a symlink is reported as itself (lstat). */
  stat(path: string, options?: SignalOptions): Promise<FileInfo>;
  exists(path: string, options?: SignalOptions): Promise<boolean>;
  /** Creates a directory and its parents (`mkdir -p`). Idempotent. */
  mkdir(path: string, options?: SignalOptions): Promise<void>;
  /** Removes a file, or a directory with `recursive`. Missing paths throw `SandboxFileNotFoundError`. */
  remove(path: string, options?: SignalOptions & { recursive?: boolean }): Promise<void>;
}
