/**
 * `files.watch` over any exec: `inotifywait -m` (inotify-tools) runs INSIDE the sandbox, so paths
 * resolve in the sandbox's view and no host watcher ever touches sandbox paths.
 *
 * Layers, each usable alone:
 * - {@link splitInotifyRecords}: bytes of inotifywait's `--format '%e%0%w%0%f%0'` output into
 *   records (NUL-separated, so any file name is safe, newlines included);
 * - {@link InotifyTranslator}: records into the contract's `FileEvent`s (pure, clock injected);
 * - {@link watchViaExec}: starts the watcher, resolves once inotifywait says "Watches
 *   established.", and serves a `FileWatch` with a bounded queue.
 *
 * inotifywait prints no move cookie, so a rename is a MOVED_FROM immediately followed by a
 * MOVED_TO (the kernel queues the pair back to back); a MOVED_FROM with no MOVED_TO within
 * `movePairingMs` was a move out (`remove`), a lone MOVED_TO a move in (`create`).
 */
import { posix } from 'node:path';
import { SandboxFileNotFoundError, SandboxProviderError } from '../errors/index.js';
import { watchOptionsSchema, type Command, type ExecOptions, type SignalOptions, type WatchOptions } from '../spec/options.js';
import type { FileEvent, FileWatch, SandboxProcess, SandboxStatus } from '../spec/sandbox.js';
import { fileExit } from './exec-files.js';
import { raceWithSignal } from './signals.js';
import { checkSandboxPath, parseOptions } from './validate.js';

/** One line of inotifywait output: its event names, the watched path (`%w`) and the entry name (`%f`, empty for the watched path itself). */
export interface InotifyRecord {
  readonly events: readonly string[];
  readonly watched: string;
  readonly name: string;
}

/** The inotifywait output format the splitter reads: three NUL-terminated fields per event. */
export const inotifyFormat = '%e%0%w%0%f%0';

/** The inotify events the watcher asks for (Q_OVERFLOW, IGNORED and UNMOUNT always come). */
export const inotifyEvents = ['create', 'delete', 'modify', 'attrib', 'close_write', 'moved_from', 'moved_to', 'delete_self', 'move_self'];

/** Exit code of the watcher script when inotifywait is not installed in the sandbox. */
export const watcherMissingExit = 127;

/**
 * The watcher, run as `sh -c <script> watch <path> <-r or empty>`: refuses a missing path and a
 * missing tool with their own exit codes, then becomes inotifywait (so killing the command kills
 * the watcher itself).
 */
export const watcherScript = [
  `command -v inotifywait >/dev/null 2>&1 || exit ${watcherMissingExit}`,
  `[ -e "$1" ] || exit ${fileExit.notFound}`,
  `exec inotifywait -m $2 --no-newline --format '${inotifyFormat}' ${inotifyEvents.map((event) => `-e ${event}`).join(' ')} -- "$1"`,
].join('\n');

/**
 * Splits inotifywait output into records. Feed it chunks as they come (a chunk may end anywhere,
 * inside a multi-byte character too); it keeps the unfinished tail. Pure apart from that tail.
 */
export class InotifyRecordSplitter {
  #carry: Uint8Array = new Uint8Array(0);
  readonly #fields: string[] = [];
  readonly #decoder = new TextDecoder();

  /** The records completed by `chunk`, in order. */
  push(chunk: Uint8Array): InotifyRecord[] {
    const bytes = this.#carry.byteLength === 0 ? chunk : concat(this.#carry, chunk);
    const records: InotifyRecord[] = [];
    let start = 0;
    for (let index = bytes.indexOf(0); index !== -1; index = bytes.indexOf(0, start)) {
      // NUL never occurs inside a UTF-8 sequence, so every field decodes whole.
      this.#fields.push(this.#decoder.decode(bytes.subarray(start, index)));
      start = index + 1;
      if (this.#fields.length === 3) {
        const [events, watched, name] = this.#fields.splice(0, 3) as [string, string, string];
        records.push({ events: events.split(','), watched, name });
      }
    }
    this.#carry = bytes.slice(start);
    return records;
  }

  /** Bytes of an unfinished record are held (a watcher that died mid-record left some). */
  get pendingBytes(): number {
    return this.#carry.byteLength + this.#fields.reduce((total, field) => total + field.length, 0);
  }
}

/** {@link InotifyRecordSplitter} over one whole buffer: the records it completes. */
export function splitInotifyRecords(output: Uint8Array): InotifyRecord[] {
  return new InotifyRecordSplitter().push(output);
}

/** What translating says besides events: the watch is over, and why. */
export type WatchEnd = 'root-removed' | 'overflow';

export interface TranslatorOptions {
  /** The watched path, normalised (absolute, no trailing slash except for `/`). */
  root: string;
  /** How long a MOVED_FROM waits for its MOVED_TO, in ms. @default 50 */
  movePairingMs?: number;
  /** How long writes to one file are gathered into one `modify` at most, in ms. @default 200 */
  burstMs?: number;
}

/** What one step of the translator produced. */
export interface Translated {
  events: FileEvent[];
  /** Set once the watch is over; later records are ignored. */
  end?: WatchEnd;
}

/**
 * Turns inotify records into `FileEvent`s. Pure: the caller passes the time (`now`, in ms) with
 * each record and calls {@link flush} at {@link nextDeadline}.
 *
 * - CREATE is `create`, DELETE `remove`; MOVED_FROM then MOVED_TO is `rename`, a lone MOVED_FROM
 *   `remove` (moved out), a lone MOVED_TO `create` (moved in).
 * - Writes are coalesced: MODIFY and ATTRIB of a file open a burst, reported as one `modify` when
 *   the writer closes the file (CLOSE_WRITE) or, for a writer that keeps it open, `burstMs` after
 *   the burst began (the next write opens the next burst). A directory's metadata change is
 *   reported at once (directories have no close).
 * - Events of the watched path itself (DELETE_SELF, MOVE_SELF, UNMOUNT) end the watch, after a
 *   `remove` of the root; Q_OVERFLOW ends it as `overflow`. Self events of subdirectories in a
 *   recursive watch repeat what their parent reported and are dropped.
 */
export class InotifyTranslator {
  readonly #root: string;
  readonly #movePairingMs: number;
  readonly #burstMs: number;
  #pendingMove: { path: string; at: number } | undefined;
  /** Files being written: when their burst began. */
  readonly #bursts = new Map<string, number>();
  #ended: WatchEnd | undefined;

  constructor(options: TranslatorOptions) {
    this.#root = options.root;
    this.#movePairingMs = options.movePairingMs ?? 50;
    this.#burstMs = options.burstMs ?? 200;
  }

  get ended(): WatchEnd | undefined {
    return this.#ended;
  }

  /** When {@link flush} has something to report, in the same clock as `now`; `undefined`: nothing pending. */
  nextDeadline(): number | undefined {
    let deadline = this.#pendingMove ? this.#pendingMove.at + this.#movePairingMs : undefined;
    for (const began of this.#bursts.values()) {
      const due = began + this.#burstMs;
      if (deadline === undefined || due < deadline) deadline = due;
    }
    return deadline;
  }

  /** Reports what is due by `now`: a lone MOVED_FROM as `remove`, bursts that lasted `burstMs`. */
  flush(now: number): Translated {
    const events: FileEvent[] = [];
    if (this.#pendingMove && this.#pendingMove.at + this.#movePairingMs <= now) events.push(this.#takeMoveAsRemove()!);
    for (const [path, began] of this.#bursts) {
      if (began + this.#burstMs > now) continue;
      this.#bursts.delete(path);
      events.push({ type: 'modify', path });
    }
    return { events };
  }

  /** Everything still held, reported now (the watcher's output ended). */
  drain(): Translated {
    const events: FileEvent[] = [];
    const move = this.#takeMoveAsRemove();
    if (move) events.push(move);
    for (const path of this.#bursts.keys()) events.push({ type: 'modify', path });
    this.#bursts.clear();
    return { events };
  }

  /** Translates one record that arrived at `now`. */
  push(record: InotifyRecord, now: number): Translated {
    const events: FileEvent[] = [];
    if (this.#ended) return { events };
    const flags = new Set(record.events);
    if (flags.has('Q_OVERFLOW')) return this.#end(events, 'overflow');
    const watched = trimSlashes(record.watched);
    const path = record.name === '' ? watched : joinPath(watched, record.name);
    const isSelf = record.name === '';
    const isDirectory = flags.has('ISDIR');

    if (this.#pendingMove && !flags.has('MOVED_TO')) events.push(this.#takeMoveAsRemove()!);

    if (isSelf && watched !== this.#root) return { events }; // a subdirectory's own event: its parent reported it
    if (isSelf && (flags.has('DELETE_SELF') || flags.has('MOVE_SELF') || flags.has('UNMOUNT'))) {
      this.#bursts.delete(path);
      events.push({ type: 'remove', path });
      return this.#end(events, 'root-removed');
    }
    if (flags.has('IGNORED') || flags.has('UNMOUNT')) return { events };
    if (flags.has('MOVED_FROM')) {
      this.#forget(path, isDirectory);
      this.#pendingMove = { path, at: now };
    } else if (flags.has('MOVED_TO')) {
      const from = this.#pendingMove;
      this.#pendingMove = undefined;
      events.push(from ? { type: 'rename', path, oldPath: from.path } : { type: 'create', path });
    } else if (flags.has('CREATE')) {
      this.#bursts.delete(path);
      events.push({ type: 'create', path });
    } else if (flags.has('DELETE')) {
      this.#forget(path, isDirectory);
      events.push({ type: 'remove', path });
    } else if (flags.has('CLOSE_WRITE')) {
      if (this.#bursts.delete(path)) events.push({ type: 'modify', path });
    } else if (flags.has('MODIFY') || flags.has('ATTRIB')) {
      if (isDirectory) events.push({ type: 'modify', path });
      else if (!this.#bursts.has(path)) this.#bursts.set(path, now);
    }
    return { events };
  }

  #takeMoveAsRemove(): FileEvent | undefined {
    const move = this.#pendingMove;
    this.#pendingMove = undefined;
    return move ? { type: 'remove', path: move.path } : undefined;
  }

  /** Drops the bursts of a path that went away (and of everything under it, for a directory). */
  #forget(path: string, isDirectory: boolean): void {
    this.#bursts.delete(path);
    if (!isDirectory) return;
    for (const key of this.#bursts.keys()) if (key.startsWith(`${path}/`)) this.#bursts.delete(key);
  }

  #end(events: FileEvent[], end: WatchEnd): Translated {
    this.#ended = end;
    this.#pendingMove = undefined;
    this.#bursts.clear();
    return { events, end };
  }
}

/** What {@link watchViaExec} needs of a sandbox. */
export interface WatchHost {
  exec(command: Command, options?: ExecOptions): Promise<SandboxProcess>;
  /**
   * Tells a watcher that stopped because the sandbox ended (the iteration is then done) from one
   * that failed (`SandboxProviderError`). Without it, every unexpected stop is a failure.
   */
  poll?(options?: SignalOptions): Promise<SandboxStatus>;
}

export interface WatchViaExecOptions {
  /** `SandboxProvider.id`, for the errors. */
  provider: string;
  /** Events held for a consumer that has not taken them. Reading the watcher's output pauses while the queue is full, so the sandbox's kernel queue overflows (an error) rather than host memory. @default 1024 */
  queueLimit?: number;
  /** See {@link TranslatorOptions.movePairingMs}. */
  movePairingMs?: number;
  /** See {@link TranslatorOptions.burstMs}. */
  burstMs?: number;
  /**
   * The sandbox's lifecycle, when the adapter has one: `assertRunning` refuses a watch on an
   * ended sandbox (`SandboxNotFoundError`), `isRunning` tells at once that a watcher stopped
   * because the sandbox is ending (before `poll` would say so).
   */
  lifecycle?: { assertRunning(): void; isRunning(): boolean };
}

const established = 'Watches established.';

/**
 * `SandboxFiles.watch` for any sandbox that can exec: validates `path` (absolute) and `options`
 * (`WatchOptions`), runs inotifywait inside the sandbox, and resolves once every watch is set up.
 *
 * Throws `SandboxInvalidArgumentError` for a bad path or option, `SandboxFileNotFoundError` when
 * the path is missing, `SandboxProviderError` when inotifywait is not in the image (the message
 * says to install inotify-tools) or cannot watch (too many watches, permissions), and
 * `signal.reason` when the signal aborts first. The resulting `FileWatch` follows the contract:
 * events in order, done when the sandbox or the watched path itself ends or on `close()`/break
 * (which kill the watcher), `signal.reason` on abort, `SandboxProviderError` when the sandbox's
 * event queue overflowed or the watcher died. The watcher is a running command of the sandbox
 * while it lasts (it counts as activity for idle timeouts).
 */
export async function watchViaExec(host: WatchHost, path: unknown, options: unknown, settings: WatchViaExecOptions): Promise<FileWatch> {
  const { provider } = settings;
  const given = checkSandboxPath(path, undefined, provider);
  const { signal, recursive } = parseOptions(watchOptionsSchema, options, { provider, what: 'watch options' }) as WatchOptions;
  signal?.throwIfAborted();
  settings.lifecycle?.assertRunning();
  const root = trimSlashes(posix.normalize(given));
  const starting = host.exec(['/bin/sh', '-c', watcherScript, 'watch', root, recursive ? '-r' : '']);
  let process: SandboxProcess | undefined;
  const start = async (): Promise<ExecWatch> => {
    process = await starting;
    void process.stdin.close().catch(() => undefined);
    const stderr = new StderrTail(process.stderr);
    if (!(await stderr.waitFor(established))) throw await startFailure(process, stderr, given, provider);
    return new ExecWatch(host, process, stderr, root, signal, settings);
  };
  return raceWithSignal(start(), {
    signal,
    operation: 'files.watch',
    provider,
    // The watcher may still be starting: stop it whenever it comes.
    onAbort: () => void starting.then((started) => started.kill().catch(() => undefined)).catch(() => undefined),
  });
}

/** Why a watcher stopped before it was ready, as the contract's error. */
async function startFailure(process: SandboxProcess, stderr: StderrTail, path: string, provider: string): Promise<Error> {
  void process.stdout.cancel().catch(() => undefined);
  const exit = await process.wait().catch((error: unknown) => error as Error);
  if (exit instanceof Error) return exit;
  const text = stderr.text.trim();
  if (exit.exitCode === fileExit.notFound || /No such file or directory/.test(text)) {
    return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider });
  }
  if (exit.exitCode === watcherMissingExit) {
    return new SandboxProviderError({
      message:
        'files.watch runs inotifywait inside the sandbox, and the image has none: install inotify-tools in the image (Debian/Ubuntu: apt-get install -y inotify-tools; Alpine: apk add inotify-tools)',
      provider,
    });
  }
  return new SandboxProviderError({ message: `Watching ${path} failed (exit ${exit.exitCode}): ${text.slice(-1000)}`, provider });
}

/** Drains a watcher's stderr (so it never blocks on it), keeping the last few KiB for errors. */
class StderrTail {
  text = '';
  readonly #waiters = new Set<() => void>();
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.#drain(stream);
  }

  /** Resolves true once `line` appeared, false if stderr ended without it. */
  async waitFor(line: string): Promise<boolean> {
    while (!this.text.includes(line)) {
      if (this.#ended) return false;
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
    return true;
  }

  async #drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of stream) this.#append(decoder.decode(chunk, { stream: true }));
    } catch {
      // The command ended under us: its exit status says why.
    }
    this.#ended = true;
    this.#wake();
  }

  #append(text: string): void {
    this.text = (this.text + text).slice(-8192);
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }
}

type Outcome = { kind: 'done' } | { kind: 'error'; error: unknown };

/** A running watch: the queue between the watcher's output and the consumer. */
class ExecWatch implements FileWatch {
  readonly #queue: FileEvent[] = [];
  readonly #limit: number;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #splitter = new InotifyRecordSplitter();
  readonly #translator: InotifyTranslator;
  #outcome: Outcome | undefined;
  #consumer: { resolve: (result: IteratorResult<FileEvent>) => void; reject: (error: unknown) => void } | undefined;
  #reading = false;
  #timer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  readonly #onAbort: () => void;

  constructor(
    private readonly host: WatchHost,
    private readonly process: SandboxProcess,
    private readonly stderr: StderrTail,
    private readonly root: string,
    private readonly signal: AbortSignal | undefined,
    private readonly settings: WatchViaExecOptions,
  ) {
    this.#limit = settings.queueLimit ?? 1024;
    this.#reader = process.stdout.getReader();
    this.#translator = new InotifyTranslator({ root, movePairingMs: settings.movePairingMs, burstMs: settings.burstMs });
    this.#onAbort = () => this.#finish({ kind: 'error', error: signal!.reason }, true);
    // The signal may have aborted while the watcher was starting (then no event would come).
    if (signal?.aborted) queueMicrotask(this.#onAbort);
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#pump();
  }

  [Symbol.asyncIterator](): AsyncIterator<FileEvent> {
    return {
      next: () => this.#next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  close(): Promise<void> {
    this.#finish({ kind: 'done' }, true);
    return this.#stopping!;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #next(): Promise<IteratorResult<FileEvent>> {
    const event = this.#queue.shift();
    if (event) {
      this.#pump();
      return Promise.resolve({ done: false, value: event });
    }
    const outcome = this.#outcome;
    if (outcome) return outcome.kind === 'done' ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(outcome.error);
    if (this.#consumer) return Promise.reject(new Error('FileWatch: next() called while an earlier next() is pending'));
    return new Promise((resolve, reject) => {
      this.#consumer = { resolve, reject };
      this.#pump();
    });
  }

  /** Reads the watcher's output while the queue has room: the only place output is read. */
  #pump(): void {
    if (this.#reading || this.#outcome || this.#queue.length >= this.#limit) return;
    this.#reading = true;
    this.#reader.read().then(
      (chunk) => {
        this.#reading = false;
        if (this.#outcome) return;
        if (chunk.done) return void this.#watcherStopped(undefined);
        const now = Date.now();
        for (const record of this.#splitter.push(chunk.value)) {
          const translated = this.#translator.push(record, now);
          this.#enqueue(translated.events);
          if (translated.end) return this.#ended(translated.end);
        }
        this.#arm();
        this.#pump();
      },
      (error: unknown) => {
        this.#reading = false;
        if (!this.#outcome) void this.#watcherStopped(error);
      },
    );
  }

  #enqueue(events: readonly FileEvent[]): void {
    for (const event of events) {
      const last = this.#queue.at(-1);
      // A consumer that is behind needs one modify of a path, not several in a row.
      if (event.type === 'modify' && last?.type === 'modify' && last.path === event.path) continue;
      if (this.#consumer && this.#queue.length === 0) {
        const consumer = this.#consumer;
        this.#consumer = undefined;
        consumer.resolve({ done: false, value: event });
      } else {
        this.#queue.push(event);
      }
    }
  }

  /** Schedules the translator's next flush (a lone move, a burst of writes). */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const deadline = this.#translator.nextDeadline();
    if (deadline === undefined || this.#outcome) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#outcome) return;
        this.#enqueue(this.#translator.flush(Date.now()).events);
        this.#arm();
      },
      Math.max(0, deadline - Date.now()),
    );
  }

  #ended(end: WatchEnd): void {
    if (end === 'overflow') {
      this.#finish(
        {
          kind: 'error',
          error: new SandboxProviderError({
            message: `Watching ${this.root}: the sandbox's inotify queue overflowed (the consumer fell behind or changes came too fast); events were lost`,
            provider: this.settings.provider,
          }),
        },
        false,
      );
    } else {
      this.#finish({ kind: 'done' }, false);
    }
  }

  /** The output ended or failed without us stopping it: the sandbox ended, or the watcher died. */
  async #watcherStopped(readError: unknown): Promise<void> {
    this.#enqueue(this.#translator.drain().events);
    const exit = await this.process.wait().catch(() => undefined);
    const ending = this.settings.lifecycle?.isRunning() === false;
    const status = ending ? undefined : await this.host.poll?.().catch(() => undefined);
    if (this.#outcome) return;
    if (ending || status?.state === 'terminated') return this.#finish({ kind: 'done' }, false);
    const detail = this.stderr.text.trim().slice(-1000);
    this.#finish(
      {
        kind: 'error',
        error: new SandboxProviderError({
          message: `The watcher of ${this.root} stopped (${exit ? `exit ${exit.exitCode}${exit.signal ? `, ${exit.signal}` : ''}` : 'no exit status'})${detail ? `: ${detail}` : ''}`,
          provider: this.settings.provider,
          cause: readError,
        }),
      },
      false,
    );
  }

  /**
   * Ends the watch once: settles a waiting consumer and stops the watcher. `discard`: the
   * consumer ended it (close, break, abort), so what it has not taken yet is dropped; a watch
   * that ended on its own still hands out what it reported before the end.
   */
  #finish(outcome: Outcome, discard: boolean): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    if (discard) this.#queue.length = 0;
    if (this.#timer) clearTimeout(this.#timer);
    this.signal?.removeEventListener('abort', this.#onAbort);
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (consumer) {
      if (outcome.kind === 'done') consumer.resolve({ done: true, value: undefined });
      else consumer.reject(outcome.error);
    }
    this.#stopping = this.#stop();
  }

  async #stop(): Promise<void> {
    void this.#reader.cancel().catch(() => undefined);
    await this.process.kill().catch(() => undefined);
    await this.process.wait().catch(() => undefined);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.byteLength + b.byteLength);
  joined.set(a, 0);
  joined.set(b, a.byteLength);
  return joined;
}

/** `/a/b/` → `/a/b`; `/` stays. */
function trimSlashes(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function joinPath(directory: string, name: string): string {
  return directory === '/' ? `/${name}` : `${directory}/${name}`;
}
