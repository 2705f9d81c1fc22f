/**
 * E2B's filesystem API (`sandbox.files`: envd's Filesystem service and its HTTP `/files`) as the
 * kit's native file calls; the kit validates paths and options and races the caller's signal.
 * Reads and writes of streams are streamed by the SDK (octet-stream uploads, streamed downloads).
 *
 * The traps: E2B's `remove` is always recursive (the contract's is not, so a non-empty directory
 * is checked first), `watchDir` watches directories only (a file is watched through its parent,
 * its events filtered), and watch paths are relative to the watched directory.
 */
import type { EntryInfo, Sandbox as E2bSdkSandbox, FilesystemEvent, WatchHandle } from 'e2b';
import {
  PushedFileWatch,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  type FileEvent,
  type FileInfo,
  type FileWatch,
  type NativeFiles,
  type SandboxError,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';
import { pairE2bRename, planE2bWatchEvent } from './e2b-options.js';

/** How long the old name of a move waits for its new name before it is reported as moved out (`remove`). */
const renamePairingMs = 100;

export class E2bFiles implements NativeFiles {
  constructor(
    /** The SDK sandbox of the moment (a resume connects anew). */
    private readonly sdk: () => E2bSdkSandbox,
    private readonly mapError: (error: unknown, operation: string, path?: string) => SandboxError,
    private readonly run: (argv: string[], options: SignalOptions) => Promise<{ exitCode: number; stdout: string; stderr: string }>,
  ) {}

  private async call<T>(operation: string, path: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw this.mapError(error, operation, path);
    }
  }

  async read(path: string, options: SignalOptions): Promise<Uint8Array> {
    return this.call('read', path, () => this.sdk().files.read(path, { format: 'bytes', signal: options.signal }));
  }

  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    const source = await this.call('read', path, () => this.sdk().files.read(path, { format: 'stream', signal: options.signal }));
    const reader = source.getReader();
    const mapError = this.mapError;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await reader.read().catch((error: unknown) => Promise.reject(mapError(error, 'read', path)));
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    const body = data instanceof ReadableStream ? data : new Blob([data]);
    await this.call('write', path, () => this.sdk().files.write(path, body, { signal: options.signal }));
    if (options.mode !== undefined) {
      const result = await this.run(['chmod', options.mode.toString(8), path], { signal: options.signal });
      if (result.exitCode !== 0) throw new SandboxProviderError({ message: `chmod ${path} failed: ${result.stderr}`, provider: 'e2b' });
    }
  }

  async list(path: string, options: SignalOptions): Promise<FileInfo[]> {
    const info = await this.stat(path);
    if (info.type !== 'directory')
      throw new SandboxInvalidArgumentError({ message: `Cannot list ${path}: it is not a directory`, argument: 'path', provider: 'e2b' });
    const entries = await this.call('list', path, () => this.sdk().files.list(path, { depth: 1, signal: options.signal }));
    const targets = await this.storedTargets(entries, options);
    return entries
      .map((entry) => toFileInfo(entry, targets.get(entry.path)))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string, options: SignalOptions = {}): Promise<FileInfo> {
    const entry = await this.call('stat', path, () => this.sdk().files.getInfo(path, { signal: options.signal }));
    const targets = await this.storedTargets([entry], options);
    return toFileInfo(entry, targets.get(entry.path));
  }

  /** What the symlinks among `entries` store (envd gives only the resolved path): one `readlink` for all. */
  private async storedTargets(entries: EntryInfo[], options: SignalOptions): Promise<Map<string, string>> {
    const links = entries.filter((entry) => entry.permissions?.startsWith('L')).map((entry) => entry.path);
    if (links.length === 0) return new Map();
    const result = await this.run(
      ['/bin/sh', '-c', 'for p; do printf "%s\\0" "$(readlink -- "$p")"; done', 'sandport-readlink', ...links],
      options,
    );
    const stored = (result as { stdout?: string }).stdout?.split('\0') ?? [];
    return new Map(links.flatMap((link, index) => (stored[index] ? [[link, stored[index]!] as const] : [])));
  }

  async exists(path: string, options: SignalOptions): Promise<boolean> {
    try {
      await this.stat(path, options);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === 'file_not_found') return false;
      // A path below a regular file does not exist either (envd: "not a directory").
      if ((error as { code?: string }).code === 'invalid_argument') return false;
      throw error;
    }
  }

  async mkdir(path: string, options: SignalOptions): Promise<void> {
    const existing = await this.stat(path, options).catch(() => undefined);
    if (existing?.type === 'directory') return;
    if (existing)
      throw new SandboxInvalidArgumentError({ message: `Cannot mkdir ${path}: a file is in the way`, argument: 'path', provider: 'e2b' });
    await this.call('mkdir', path, () => this.sdk().files.makeDir(path, { signal: options.signal }));
  }

  async remove(path: string, options: SignalOptions & { recursive?: boolean | undefined }): Promise<void> {
    const info = await this.stat(path, options);
    if (info.type === 'directory' && !options.recursive) {
      const entries = await this.call('remove', path, () => this.sdk().files.list(path, { depth: 1, signal: options.signal }));
      if (entries.length > 0)
        throw new SandboxInvalidArgumentError({
          message: `Cannot remove ${path}: the directory is not empty (pass recursive: true)`,
          argument: 'path',
          provider: 'e2b',
        });
    }
    await this.call('remove', path, () => this.sdk().files.remove(path, { signal: options.signal }));
  }
}

/**
 * envd's entry as the contract's `FileInfo` (pure). envd describes a symlink by what it points at
 * (its type and permission bits, and the fully resolved path as `symlinkTarget`); only Go's mode
 * string (`Lrwxrwxrwx`) tells it is a link: such an entry is a `symlink` with the link's own
 * bits (0o777) and `linkTarget` as given (`storedTarget`, read with `readlink`, else envd's
 * resolved path).
 */
export function toFileInfo(entry: EntryInfo, storedTarget?: string): FileInfo {
  const link = entry.permissions?.startsWith('L') === true;
  const type = link ? 'symlink' : entry.type === 'file' ? 'file' : entry.type === 'dir' ? 'directory' : 'other';
  const target = storedTarget ?? entry.symlinkTarget;
  return {
    name: entry.name,
    path: entry.path,
    type,
    size: entry.size,
    mode: link ? 0o777 : entry.mode & 0o7777,
    modifiedAt: entry.modifiedTime ? entry.modifiedTime.getTime() : 0,
    ...(link && target !== undefined ? { linkTarget: target } : {}),
  };
}

export interface E2bWatchInit {
  sdk: E2bSdkSandbox;
  /** Absolute, validated, existing. */
  path: string;
  /** Whether `path` is a directory (else its parent is watched and the events filtered). */
  directory: boolean;
  recursive: boolean;
  signal: AbortSignal | undefined;
  mapError: (error: unknown, operation: string, path?: string) => SandboxError;
  isRunning: () => boolean;
}

/** Starts a watch on `watchDir`; resolves once envd reported the watcher in place (its start event). */
export async function startE2bWatch(init: E2bWatchInit): Promise<FileWatch> {
  init.signal?.throwIfAborted();
  const watch = new E2bFileWatch(init);
  const root = init.directory ? init.path : parentOf(init.path);
  try {
    const handle = await init.sdk.files.watchDir(root, (event) => watch.receive(root, event), {
      recursive: init.directory && init.recursive,
      timeoutMs: 0,
      signal: init.signal,
      onExit: (error) => watch.exited(error),
    });
    watch.attach(handle);
  } catch (error) {
    throw init.signal?.aborted ? init.signal.reason : init.mapError(error, 'watch', init.path);
  }
  return watch;
}

function parentOf(path: string): string {
  const cut = path.replace(/\/+$/, '').lastIndexOf('/');
  return cut <= 0 ? '/' : path.slice(0, cut);
}

/** The rename pairing and one-file filter over envd's events; the queue is the kit's `PushedFileWatch`. */
class E2bFileWatch extends PushedFileWatch {
  readonly #init: E2bWatchInit;
  #handle: WatchHandle | undefined;
  #pending: FileEvent | undefined;
  #pendingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(init: E2bWatchInit) {
    super({
      provider: 'e2b',
      path: init.path,
      signal: init.signal,
      stop: () => {
        clearTimeout(this.#pendingTimer);
        void this.#handle?.stop().catch(() => undefined);
      },
    });
    this.#init = init;
  }

  attach(handle: WatchHandle): void {
    this.#handle = handle;
    if (this.ended) void handle.stop().catch(() => undefined);
  }

  receive(root: string, event: FilesystemEvent): void {
    if (this.ended) return;
    const mapped = planE2bWatchEvent(root, { type: event.type, name: event.name });
    if (!mapped) return;
    // A watched file: only its own events (its parent is what envd watches).
    if (!this.#init.directory && mapped.path !== this.#init.path && this.#pending === undefined) return;
    const pending = this.#takePending();
    const events = pending ? pairE2bRename(pending, mapped) : [mapped];
    const last = events[events.length - 1]!;
    for (const each of events.slice(0, -1)) this.#emit(each);
    if (event.type === 'rename' && mapped.path !== this.#init.path) {
      // The old name of a move: its new name may follow at once.
      this.#pending = last;
      this.#pendingTimer = setTimeout(() => {
        const alone = this.#takePending();
        if (alone) this.#emit(alone);
      }, renamePairingMs);
      return;
    }
    this.#emit(last);
  }

  #takePending(): FileEvent | undefined {
    const pending = this.#pending;
    this.#pending = undefined;
    clearTimeout(this.#pendingTimer);
    return pending;
  }

  #emit(event: FileEvent): void {
    if (this.ended) return;
    if (!this.#init.directory && event.path !== this.#init.path && event.oldPath !== this.#init.path) return;
    this.deliver(event);
    if (event.type === 'remove' && event.path === this.#init.path) this.finish({ done: true });
  }

  exited(error: Error | undefined): void {
    if (!error) {
      this.finish({ done: true });
      return;
    }
    const mapped = this.#init.mapError(error, 'watch', this.#init.path);
    const gone = SandboxNotFoundError.isInstance(mapped) || !this.#init.isRunning();
    this.finish(gone ? { done: true } : { error: mapped });
  }
}
