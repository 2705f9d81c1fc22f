/**
 * envd's directory watch (WatchDir and the polling CreateWatcher), answered from inside the
 * sandbox with inotifywait (inotify-tools), never a host watcher on sandbox paths. envd watches
 * with fsnotify, which reports each inotify event as it comes, uncoalesced, as one or more of
 * its operations; envd sends one event per operation, named by its path relative to the watched
 * directory:
 *
 * | inotify                  | fsnotify | E2B      |
 * | ------------------------ | -------- | -------- |
 * | CREATE, MOVED_TO         | Create   | CREATE   |
 * | MOVED_FROM, MOVE_SELF    | Rename   | RENAME   |
 * | ATTRIB                   | Chmod    | CHMOD    |
 * | MODIFY                   | Write    | WRITE    |
 * | DELETE, DELETE_SELF      | Remove   | REMOVE   |
 *
 * so a rename is RENAME of the old name then CREATE of the new one, and every write(2) is a
 * WRITE. The watched directory's own events are named `.`; a subdirectory's own events in a
 * recursive watch repeat what its parent reported and are dropped. A queue overflow ends the
 * watch with an error, as fsnotify's does. The watch outlives its directory: once that is gone
 * nothing more is reported, until the client leaves.
 */
import { posix } from 'node:path';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { InotifyRecordSplitter, fileExit, watcherMissingExit, watcherScript, type SandboxProcess } from '../../../src/kit/index.js';
import { ConnectError } from './e2b-connect.js';
import { statEntry, type EnvdEntry } from './e2b-fs-tools.js';

/** envd's event types, as protobuf's JSON names them. */
export type EnvdEventType = 'EVENT_TYPE_CREATE' | 'EVENT_TYPE_WRITE' | 'EVENT_TYPE_REMOVE' | 'EVENT_TYPE_RENAME' | 'EVENT_TYPE_CHMOD';

export interface EnvdWatchEvent {
  /** Relative to the watched directory (`.` for the directory itself). */
  name: string;
  type: EnvdEventType;
  /** With `includeEntry`, for CREATE, WRITE and CHMOD when the path still exists. */
  entry?: EnvdEntry;
}

export interface EnvdWatchOptions {
  recursive: boolean;
  includeEntry: boolean;
}

// fsnotify's order of operations within one event.
const operations: ReadonlyArray<[EnvdEventType, readonly string[]]> = [
  ['EVENT_TYPE_CREATE', ['CREATE', 'MOVED_TO']],
  ['EVENT_TYPE_RENAME', ['MOVED_FROM', 'MOVE_SELF']],
  ['EVENT_TYPE_CHMOD', ['ATTRIB']],
  ['EVENT_TYPE_WRITE', ['MODIFY']],
  ['EVENT_TYPE_REMOVE', ['DELETE', 'DELETE_SELF']],
];

const carriesEntry = new Set<EnvdEventType>(['EVENT_TYPE_CREATE', 'EVENT_TYPE_WRITE', 'EVENT_TYPE_CHMOD']);

/** One running inotifywait in the sandbox and the events it reports, read as the caller pulls. */
export class EnvdWatcher {
  readonly #splitter = new InotifyRecordSplitter();
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #pending: EnvdWatchEvent[] = [];
  #closed = false;

  private constructor(
    private readonly sandbox: LocalSandbox,
    private readonly process: SandboxProcess,
    private readonly root: string,
    private readonly options: EnvdWatchOptions,
  ) {
    this.#reader = process.stdout.getReader();
  }

  /**
   * Starts watching `root` (an existing directory, as resolved for the caller); resolves once every
   * watch is set. Throws `ConnectError` when inotifywait is missing or cannot watch.
   */
  static async start(sandbox: LocalSandbox, root: string, options: EnvdWatchOptions): Promise<EnvdWatcher> {
    const process = await sandbox.exec(['/bin/sh', '-c', watcherScript, 'watch', root, options.recursive ? '-r' : ''], {
      env: { LC_ALL: 'C' },
    });
    void process.stdin.close().catch(() => undefined);
    const failure = await waitEstablished(process);
    if (failure !== undefined) {
      await process.kill().catch(() => undefined);
      const exit = await process.wait().catch(() => ({ exitCode: -1 }));
      if (exit.exitCode === watcherMissingExit) {
        throw new ConnectError(
          'internal',
          'error creating watcher: the E2B emulator watches with inotifywait, which this sandbox image lacks: install inotify-tools in the template',
        );
      }
      if (exit.exitCode === fileExit.notFound) throw new ConnectError('not_found', `path ${root} not found`);
      throw new ConnectError('internal', `error adding path ${root} to watcher: ${failure}`);
    }
    return new EnvdWatcher(sandbox, process, root, options);
  }

  /**
   * The next events (at least one), or null once inotifywait ended (its directory is gone, or the
   * sandbox is). Throws `ConnectError` on a queue overflow.
   */
  async next(): Promise<EnvdWatchEvent[] | null> {
    for (;;) {
      if (this.#pending.length > 0) return this.#pending.splice(0);
      if (this.#closed) return null;
      const chunk = await this.#reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (chunk.done) {
        this.#closed = true;
        return null;
      }
      for (const record of this.#splitter.push(chunk.value)) {
        for (const event of this.#translate(record.events, record.watched, record.name)) {
          if (this.options.includeEntry && carriesEntry.has(event.type)) {
            const absolute = event.name === '.' ? this.root : posix.join(this.root, event.name);
            // Best effort, like envd's: a path that went away meanwhile has no entry.
            const entry = await statEntry(this.sandbox, absolute).catch(() => undefined);
            if (entry) event.entry = entry;
          }
          this.#pending.push(event);
        }
      }
    }
  }

  /** Stops inotifywait. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#reader.cancel().catch(() => undefined);
    await this.process.kill().catch(() => undefined);
    await this.process.wait().catch(() => undefined);
  }

  #translate(flags: readonly string[], watched: string, name: string): EnvdWatchEvent[] {
    if (flags.includes('Q_OVERFLOW')) {
      throw new ConnectError('internal', 'watcher error: fsnotify: queue or buffer overflow');
    }
    const directory = watched.length > 1 ? watched.replace(/\/+$/, '') : watched;
    if (name === '' && directory !== this.root) return [];
    const path = name === '' ? directory : posix.join(directory, name);
    const relative = posix.relative(this.root, path) || '.';
    const events: EnvdWatchEvent[] = [];
    for (const [type, names] of operations) {
      if (names.some((flag) => flags.includes(flag))) events.push({ name: relative, type });
    }
    return events;
  }
}

/** Resolves once inotifywait says its watches are set (undefined), or to its error output if it ends first. */
async function waitEstablished(process: SandboxProcess): Promise<string | undefined> {
  const reader = process.stderr.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const next = await reader.read().catch(() => ({ done: true as const, value: undefined }));
    if (next.done) return text.trim() || 'the watcher ended before it was ready';
    text += decoder.decode(next.value, { stream: true });
    if (text.includes('Watches established.')) {
      // Keep draining, so that later warnings never stall the watcher on a full pipe.
      reader.releaseLock();
      void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
      return undefined;
    }
    if (text.length > 16_000) text = text.slice(-8000);
  }
}
