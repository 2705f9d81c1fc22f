/**
 * The contract every provider implements. Providers are plug-ins: `adapters/<name>` exports a
 * `SandboxProvider`; apps and `AgentSession` only ever see these types.
 *
 * Conventions that hold for every member below:
 * - every async method takes `signal?: AbortSignal`; an aborted call rejects with `signal.reason`
 *   (not a `SandboxError`) and releases what it started;
 * - arguments are validated before any I/O: a bad one is a `SandboxInvalidArgumentError` whose
 *   `argument` names it;
 * - errors are `SandboxError` subclasses (from `sandport`'s errors) with the provider's own
 *   error kept as `cause`;
 * - once a sandbox has ended (terminated, timed out, its entrypoint exited), every member
 *   except `terminate`, `poll` and `wait` rejects with `SandboxNotFoundError`;
 * - a member marked "Idempotent" may be repeated with the same effect, and adapters may retry it
 *   on transient provider errors (rate limits, 5xx, connection resets); the others are never
 *   retried;
 * - an optional member exists exactly when its flag in `capabilities` is true.
 */
import type { SandboxCapabilities } from './sandbox-capabilities.js';
import type {
  Command,
  CreateSandboxOptions,
  PtySize,
  ExecOptions,
  ListSandboxesOptions,
  NetworkPolicy,
  RemoveOptions,
  RunOptions,
  SandboxSignal,
  SandboxSnapshotRef,
  SandboxTags,
  SignalOptions,
  WatchOptions,
  WriteFileData,
  WriteFileOptions,
} from './options.js';
import type { SandboxEmitter, SandboxWarning } from './events.js';

export interface SandboxProvider {
  /** Version of this contract the provider implements. */
  readonly specificationVersion: 'sandbox-v1';
  /** Short stable id, kebab-case: `'local'`, `'docker'`, `'modal'`, … Also `SandboxError.provider`. */
  readonly id: string;
  /**
   * What this provider can do: which optional members exist, which settings it enforces, its
   * limits. Constant for the provider's life; the conformance suite's skips read it too.
   */
  readonly capabilities: SandboxCapabilities;
  /** Events of every sandbox this provider creates or finds. */
  readonly events: SandboxEmitter;

  /**
   * Creates a sandbox and resolves when it is ready to `exec`. Settings the provider adjusted
   * (never security settings) are in the result's `warnings`.
   *
   * Not idempotent (never retried). Throws `SandboxInvalidArgumentError` for a bad option (before
   * any I/O), `SandboxAlreadyExistsError` for a taken `name`, `SandboxCapabilityUnsupportedError`
   * for a setting the provider cannot honour that touches security (network, limits, volumes,
   * images it cannot start), `SandboxAuthenticationError` when a cloud provider refuses the
   * credentials, and `SandboxProviderError` for anything else the provider reported (an image
   * that cannot be pulled or built). An aborted create releases what it started.
   */
  create(options?: CreateSandboxOptions): Promise<Sandbox>;
  /**
   * Attaches to a running sandbox by `Sandbox.id`. Idempotent. Throws
   * `SandboxInvalidArgumentError` for an empty id and `SandboxNotFoundError` when no sandbox with
   * that id is running (it never existed, or it ended). Whether sandboxes created by other
   * processes are found is `capabilities.crossProcessLookup`.
   */
  fromId(id: string, options?: SignalOptions): Promise<Sandbox>;
  /**
   * Attaches to a running sandbox by its create `name`. Present when `capabilities.fromName`.
   * Idempotent. Throws `SandboxNotFoundError` (with `sandboxName`) when none is running.
   */
  fromName?(name: string, options?: SignalOptions): Promise<Sandbox>;
  /**
   * The running (and paused) sandboxes of this provider (ended ones are left out), optionally only those
   * carrying every tag given; in no particular order. Present when `capabilities.list`.
   * Idempotent. Throws `SandboxInvalidArgumentError` for a bad filter.
   */
  list?(options?: ListSandboxesOptions): Promise<SandboxInfo[]>;
  /**
   * Deletes a snapshot made by `Sandbox.snapshot()`. Sandboxes already started from it are
   * unaffected. Present when `capabilities.deleteSnapshot`. Idempotent: deleting a deleted (or
   * unknown) snapshot resolves. Throws `SandboxInvalidArgumentError` for a snapshot of another
   * provider.
   */
  deleteSnapshot?(snapshot: SandboxSnapshotRef, options?: SignalOptions): Promise<void>;
  /**
   * Opens one route from inside future sandboxes to one host service listening on a Unix
   * socket (how the agent layer's credential proxy reaches its sandboxes), without joining the
   * host's network: merge the returned `createOptions` into `create`, and processes in the
   * sandbox reach the service at `sandboxUrl`. Present when `capabilities.hostRoutes`.
   *
   * Does no I/O (the route exists from the sandbox's creation on), so it is synchronous and
   * idempotent. Throws `SandboxInvalidArgumentError` (argument `hostSocketPath` or
   * `sandboxPort`) for a relative socket path or a port outside 1-65535.
   */
  openHostRoute?(hostSocketPath: string, options: { readonly sandboxPort: number }): SandboxHostRoute;
}

/** A route from inside a sandbox to one host service, from `SandboxProvider.openHostRoute`. */
export interface SandboxHostRoute {
  /** Options to merge into `create` (provider options and volumes merge one level deep). */
  readonly createOptions: Pick<CreateSandboxOptions, 'providerOptions' | 'volumes' | 'env'>;
  /** Base URL processes inside the sandbox use to reach the host service (`http://127.0.0.1:<port>`). */
  readonly sandboxUrl: string;
}

/** A running sandbox as `SandboxProvider.list` reports it. */
export interface SandboxInfo {
  /** Provider-assigned id, accepted by `SandboxProvider.fromId`. */
  readonly id: string;
  /** The create `name`, or `undefined` when it had none. */
  readonly name: string | undefined;
  /** Its tags at the time of the listing (see `SandboxTags`). */
  readonly tags: Readonly<SandboxTags>;
  /** When it was created, in milliseconds since the Unix epoch. */
  readonly createdAt: number;
}

/**
 * Where a sandbox is in its life. `'paused'`: `pause()` stopped it, `resume()` continues it.
 * `exitCode` is the entrypoint's, when it had one and it exited.
 */
export type SandboxStatus =
  | { readonly state: 'running' }
  | { readonly state: 'paused' }
  | { readonly state: 'terminated'; readonly reason: SandboxEndReason; readonly exitCode?: number };

/**
 * Why a sandbox ended:
 * - `'terminated'`: `terminate()` (or disposal) was called;
 * - `'lifetime-timeout'`: its `timeoutMs` ran out;
 * - `'idle-timeout'`: its `idleTimeoutMs` ran out;
 * - `'entrypoint-exited'`: its create `command` exited (the code is `exitCode`);
 * - `'crashed'`: it ended for any other reason (killed from outside, the provider lost it).
 */
export type SandboxEndReason = 'terminated' | 'lifetime-timeout' | 'idle-timeout' | 'entrypoint-exited' | 'crashed';

export interface Sandbox extends AsyncDisposable {
  /** Provider-assigned id, accepted by `provider.fromId`. Stable for the sandbox's life. */
  readonly id: string;
  /** `SandboxProvider.id` of the provider that made it. */
  readonly provider: string;
  /** The create `name`, or `undefined` when it had none. */
  readonly name: string | undefined;
  /** The sandbox's filesystem, seen from inside it. */
  readonly files: SandboxFiles;
  /** Settings the provider adjusted at create (never security settings: those throw). Empty for a sandbox found by `fromId`. */
  readonly warnings: readonly SandboxWarning[];

  /**
   * Standard output of the sandbox's own process: the create `command` (a server's log, say).
   * Present when `capabilities.entrypointStdio`. The same stream on every read of the property;
   * it closes when the entrypoint exits (or at once when the sandbox has no `command`).
   *
   * Memory is bounded: until the stream is first read (locked by a reader), the sandbox keeps
   * the latest `entrypointBufferBytes` (1 MiB) and drops older output, with a `warning` event
   * saying how much; from the first read on it is pull-based like `SandboxProcess.stdout` (an
   * unread stream then stalls the entrypoint, never the host). A sandbox found by `fromId` reads
   * what its provider still holds (Modal: the output from the start; Docker, whose entrypoint is
   * an exec beside the container's main process, and local, in another process: nothing, the
   * streams are those of a sandbox without `command`).
   */
  readonly stdout?: ReadableStream<Uint8Array>;
  /** Standard error of the entrypoint, bounded like `stdout`. Present when `capabilities.entrypointStdio`. */
  readonly stderr?: ReadableStream<Uint8Array>;
  /**
   * Standard input of the entrypoint: write, then `close()` for EOF; backpressure as in
   * `SandboxProcess.stdin`. Writes are discarded once the entrypoint has exited, or when the
   * sandbox has no `command`. Present when `capabilities.entrypointStdio`.
   */
  readonly stdin?: WritableStream<Uint8Array>;

  /**
   * Starts a command and resolves once it runs, with its streams. A string runs through
   * `sh -c`; an argv array passes through unchanged. A non-zero exit is not an error: read it
   * from `wait()`.
   *
   * Not idempotent (never retried). Throws `SandboxInvalidArgumentError` for a bad command or
   * option, and when the program (argument `command`) or the `cwd` (argument `cwd`) does not
   * exist; `SandboxNotFoundError` when the sandbox has ended. An aborted `signal` before the
   * start rejects with `signal.reason`; after it, it kills the command (see `ExecOptions.signal`).
   */
  exec(command: Command, options?: ExecOptions): Promise<SandboxProcess>;
  /**
   * Runs a command to completion and buffers its output (derived from `exec`; its stdin gets
   * `options.stdin`, then EOF).
   *
   * Not idempotent (never retried). Throws like `exec`, plus `SandboxTimeoutError` (operation
   * `'exec'`) after `timeoutMs` (the process tree is killed first), `CommandExitError` on a
   * non-zero exit when `throwOnNonZeroExit` is set, and `SandboxNotFoundError` when the sandbox
   * ends under the command.
   */
  run(command: Command, options?: RunOptions): Promise<ExecResult>;

  /**
   * Host-reachable URLs of the ports declared at create (`ports`), keyed by sandbox port; `{}`
   * when none were declared. Idempotent. Throws `SandboxCapabilityUnsupportedError` (capability
   * `tunnels`) when the provider has no tunnels, `SandboxNotFoundError` when the sandbox has ended.
   */
  tunnels(options?: SignalOptions): Promise<Record<number, Tunnel>>;
  /**
   * Captures the sandbox's filesystem; pass the result as `image` to `create`. The sandbox
   * keeps running and is unchanged; secrets are left out where the provider can. Present when
   * `capabilities.snapshot`. Not idempotent: each call makes a new snapshot (delete them with
   * `provider.deleteSnapshot`). Throws `SandboxNotFoundError` when the sandbox has ended.
   */
  snapshot?(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /**
   * Replaces the sandbox's tags (all of them: keys left out are removed). Idempotent. Throws
   * `SandboxInvalidArgumentError` (argument `tags`) for tags outside the `SandboxTags` rules,
   * `SandboxCapabilityUnsupportedError` (capability `tags`) when the provider keeps none, and
   * `SandboxNotFoundError` when the sandbox has ended.
   */
  setTags(tags: SandboxTags, options?: SignalOptions): Promise<void>;
  /**
   * The sandbox's current tags (a copy). Idempotent. Throws `SandboxNotFoundError` when the
   * sandbox has ended.
   */
  getTags(options?: SignalOptions): Promise<SandboxTags>;
  /**
   * Moves the lifetime deadline to `timeoutMs` **milliseconds** from now (it may shorten it). A
   * positive integer, at most `maxTimerMs` and `capabilities.timeouts.maxLifetimeMs`; beyond
   * either it is a `SandboxInvalidArgumentError` (argument `timeoutMs`). Present when
   * `capabilities.extendTimeout`. Idempotent (a repeat sets the deadline from its own now).
   * Throws `SandboxNotFoundError` when the sandbox has ended.
   */
  extendTimeout?(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /**
   * Replaces the network policy of a running sandbox: the new allowlist applies to every
   * connection opened after this resolves (connections already open are left alone), and
   * `'block'` refuses every new one. Present when `capabilities.network.update`. A provider that
   * cannot make the change honestly (for example from `'allow'`, or to `'allow'`, where the
   * sandbox's network was fixed at create) throws `SandboxCapabilityUnsupportedError` with
   * capability `network.update`, saying why, and changes nothing. Idempotent. Throws `SandboxNotFoundError` when the sandbox
   * has ended, `SandboxInvalidArgumentError` for a malformed policy.
   */
  updateNetwork?(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
  /**
   * Stops every process of the sandbox where it is, keeping its memory and files, until
   * `resume()`. While paused, the lifetime and idle timeouts stand still (the lifetime's
   * remaining time is kept), `poll()` reports `{ state: 'paused' }`, and every member but
   * `resume`, `terminate`, `poll`, `wait`, `getTags` and `setTags` rejects with
   * `SandboxPausedError`; a command's streams and `wait()` simply wait. Present when
   * `capabilities.pause`. Idempotent: pausing a paused sandbox resolves. Throws
   * `SandboxNotFoundError` when the sandbox has ended.
   */
  pause?(options?: SignalOptions): Promise<void>;
  /**
   * Continues a paused sandbox: its processes run on from where they were, and the idle timer
   * starts afresh. Present when `capabilities.pause`. Idempotent: resuming a running sandbox
   * resolves. A sandbox found by `fromId` while paused is resumed by this too. Throws
   * `SandboxNotFoundError` when the sandbox has ended.
   */
  resume?(options?: SignalOptions): Promise<void>;
  /**
   * The current status, without waiting. Idempotent. Never throws `SandboxNotFoundError` for
   * an ended sandbox: it reports `{ state: 'terminated', reason }`.
   */
  poll(options?: SignalOptions): Promise<SandboxStatus>;
  /**
   * Resolves when the sandbox has ended, with why (at once when it already has). Idempotent.
   * Rejects only with `signal.reason` when the signal aborts (the sandbox is unaffected).
   */
  wait(options?: SignalOptions): Promise<Extract<SandboxStatus, { state: 'terminated' }>>;
  /**
   * Stops every process and releases everything the sandbox held (for the local provider: its
   * processes, cgroups, network helpers and directory); commands still running reject with
   * `SandboxNotFoundError`. Resolves once the sandbox is gone; `wait()` then reports `'terminated'`.
   * Idempotent: a second call, or a call on a sandbox that already ended, resolves.
   */
  terminate(options?: SignalOptions): Promise<void>;
}

/** A host-reachable address of a sandbox port, from `Sandbox.tunnels()`. */
export interface Tunnel {
  /** Sandbox port the tunnel reaches. */
  readonly port: number;
  /** Base URL, `http://host:port` or `https://…` when `encrypted`. */
  readonly url: string;
  /** Host name or IP address to connect to from the host (`'127.0.0.1'` for local providers). */
  readonly host: string;
  /** Port to connect to on `host` (not the sandbox port). */
  readonly hostPort: number;
  /** Whether the tunnel is TLS (`https:`/`wss:`). False where `capabilities.tunnelsTls` is false. */
  readonly encrypted: boolean;
}

/** The buffered outcome of `Sandbox.run`. */
export interface ExecResult {
  /** Exit status; 128 + n when the process was killed by signal n (shell convention). */
  readonly exitCode: number;
  /** Name of the signal that killed the process, when one did (`'SIGKILL'`). */
  readonly signal: string | undefined;
  /**
   * Standard output decoded as UTF-8; invalid sequences become U+FFFD. At most `maxOutputBytes`
   * bytes are kept (a cut inside a character decodes as U+FFFD too).
   */
  readonly stdout: string;
  /** Standard error, decoded and bounded like `stdout`. Empty where `capabilities.exec.separateStderr` is false. */
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
  /**
   * The command's standard input. Write, then `close()` for EOF. Backpressure: `write` resolves
   * when the sandbox took the data. Once the command has exited, writes are discarded and
   * `close()` resolves (nothing can read them; `wait()` says how it ended). Where
   * `capabilities.exec.stdin` is false, writes error;
   * where `capabilities.exec.stdinEof` is false, `close()` throws
   * `SandboxCapabilityUnsupportedError` (capability `exec.stdinEof`).
   */
  readonly stdin: WritableStream<Uint8Array>;
  /** Pull-based: an unread stream stalls the command once the pipe buffer is full, never the host. */
  readonly stdout: ReadableStream<Uint8Array>;
  /**
   * Standard error, pull-based like `stdout`. Where `capabilities.exec.separateStderr` is false
   * it is empty and everything arrives on `stdout`.
   */
  readonly stderr: ReadableStream<Uint8Array>;
  /**
   * Resolves when the command has exited, with its exit status (a non-zero exit is not an
   * error). Idempotent. Rejects with `SandboxTimeoutError` (operation `'exec'`) when the exec's
   * `timeoutMs` ran out (the tree is killed first), with `signal.reason` when the exec's signal
   * aborted, and with `SandboxNotFoundError` when the sandbox ended under it.
   */
  wait(): Promise<ExitStatus>;
  /**
   * Sends `signal` to the command and its whole process tree.
   *
   * Idempotent: killing a command that has exited resolves. Throws `SandboxInvalidArgumentError`
   * (argument `signal`) for a name outside `SandboxSignal`, and
   * `SandboxCapabilityUnsupportedError` (capability `exec.signals`) for a signal other than
   * `'SIGKILL'` where `capabilities.exec.signals` is false, and `SandboxPausedError` while the
   * sandbox is paused (resume it first).
   *
   * @param signal - the signal to send. @defaultValue `'SIGKILL'`
   */
  kill(signal?: SandboxSignal): Promise<void>;
  /**
   * Changes the terminal's size; the command sees `SIGWINCH` and the new `stty size`. Present
   * exactly on processes started with `ExecOptions.pty`. Idempotent: resizing a command that has
   * exited resolves. Throws `SandboxInvalidArgumentError` (argument `pty.cols` or `pty.rows`)
   * for sizes outside 1-65535.
   */
  resize?(size: PtySize, options?: SignalOptions): Promise<void>;
}

/**
 * One change seen by `SandboxFiles.watch`:
 * - `'create'`: `path` appeared (created, or moved in from outside the watched tree);
 * - `'modify'`: `path`'s content or metadata changed (reported once per write burst at most
 *   where the provider coalesces);
 * - `'remove'`: `path` went away (deleted, or moved out of the watched tree);
 * - `'rename'`: `oldPath` became `path`, both inside the watched tree.
 * Providers that cannot tell a move from a modification (Modal, for a move across the edge of
 * the watched tree) report it as `'modify'`.
 */
export interface FileEvent {
  readonly type: 'create' | 'modify' | 'remove' | 'rename';
  /** Absolute sandbox path the event is about (the new path of a rename). */
  readonly path: string;
  /** For `'rename'`: the path before the move. */
  readonly oldPath?: string;
}

/**
 * A running watch, from `SandboxFiles.watch`: iterate it for events, in the order they
 * happened. Breaking out of a `for await` loop, `close()` or disposal stops the watcher inside
 * the sandbox. Iteration ends (done) when the sandbox ends; it rejects with `signal.reason` when
 * the watch's signal aborts, and with `SandboxProviderError` when the watcher fails or its queue
 * overflowed (events would otherwise be lost silently).
 */
export interface FileWatch extends AsyncIterable<FileEvent>, AsyncDisposable {
  /** Stops watching; iteration then ends. Idempotent. */
  close(): Promise<void>;
}

/** Metadata of a path inside the sandbox. */
export interface FileInfo {
  /** The entry's own name (the last path segment), for example `'notes.txt'`. */
  readonly name: string;
  /** Absolute path inside the sandbox. */
  readonly path: string;
  /** What the entry is. A symlink is reported as itself; `'other'` is a socket, FIFO or device. */
  readonly type: 'file' | 'directory' | 'symlink' | 'other';
  /** Size in bytes (of the link itself for a symlink). */
  readonly size: number;
  /** Permission bits, for example `0o644`. */
  readonly mode: number;
  /** Last modification, in milliseconds since the Unix epoch. */
  readonly modifiedAt: number;
  /** Target of a symlink, as stored in the link. Present only for symlinks. */
  readonly linkTarget?: string;
}

/**
 * The sandbox's filesystem, seen from inside it: symlinks resolve inside the sandbox, never on
 * the host. For every method:
 * - `path` is an **absolute** sandbox path. A relative path (`'notes.txt'`, `'../etc'`), an
 *   empty path or one with NUL bytes is a `SandboxInvalidArgumentError` (argument `path`);
 * - a missing path is a `SandboxFileNotFoundError` (except for `exists`, `mkdir` and `write`);
 * - after the sandbox has ended, every call is a `SandboxNotFoundError`.
 * Reads are idempotent; writes replace the file whole.
 */
export interface SandboxFiles {
  /**
   * The whole file, as bytes. Idempotent. Throws `SandboxFileNotFoundError` when it is missing
   * and `SandboxInvalidArgumentError` (argument `path`) when it is a directory.
   */
  read(path: string, options?: SignalOptions): Promise<Uint8Array>;
  /**
   * The whole file, decoded as UTF-8 (invalid sequences become U+FFFD). Idempotent. Throws like
   * `read`.
   */
  readText(path: string, options?: SignalOptions): Promise<string>;
  /**
   * Streams the file; nothing is buffered beyond the stream's queue, and cancelling the stream
   * stops the read. Idempotent. Throws like `read` before the first byte; a failure later errors
   * the stream.
   */
  readStream(path: string, options?: SignalOptions): Promise<ReadableStream<Uint8Array>>;
  /**
   * Creates or replaces a file; missing parent directories are created. A string is written as
   * UTF-8, an `ArrayBuffer` as its bytes, a stream as it arrives (with backpressure). Throws
   * `SandboxInvalidArgumentError` for data of another type (argument `data`), a bad `mode`
   * (argument `mode`), or a path that is a directory (argument `path`).
   *
   * Idempotent for a string or bytes (writing again gives the same file); a stream is read
   * once, so a stream write is never retried.
   */
  write(path: string, data: WriteFileData, options?: WriteFileOptions): Promise<void>;
  /**
   * The entries of a directory (not `.` and `..`), sorted by name; symlinks are reported as
   * themselves. Idempotent. Throws `SandboxFileNotFoundError` when it is missing and
   * `SandboxInvalidArgumentError` (argument `path`) when it is not a directory.
   */
  list(path: string, options?: SignalOptions): Promise<FileInfo[]>;
  /** Metadata of a path; a symlink is reported as itself (lstat). Idempotent. Throws `SandboxFileNotFoundError`. */
  stat(path: string, options?: SignalOptions): Promise<FileInfo>;
  /** Whether the path exists (a dangling symlink exists). Idempotent. Never throws `SandboxFileNotFoundError`. */
  exists(path: string, options?: SignalOptions): Promise<boolean>;
  /**
   * Creates a directory and its parents (`mkdir -p`). Idempotent: an existing directory
   * resolves. Fails when a file is in the way.
   */
  mkdir(path: string, options?: SignalOptions): Promise<void>;
  /**
   * Removes a file or symlink (never its target), or a directory: an empty one, or any with
   * `recursive`. Not idempotent: a missing path throws `SandboxFileNotFoundError`, so a
   * remove is never retried. Without `recursive`, a non-empty directory is not removed and
   * the call rejects.
   */
  remove(path: string, options?: RemoveOptions): Promise<void>;
  /**
   * Watches a directory (its direct entries, or the whole tree with `recursive`) or a file, from
   * inside the sandbox. Resolves once the watch is established: every change after that is
   * reported. Present when `capabilities.files.watch`. Throws `SandboxFileNotFoundError` when
   * the path is missing. Events the consumer has not taken yet wait in a bounded queue; a
   * consumer that falls far behind gets a `SandboxProviderError` instead of a silent gap.
   */
  watch?(path: string, options?: WatchOptions): Promise<FileWatch>;
}
