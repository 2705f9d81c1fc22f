/**
 * The fs tool's Watch command (`sb.filesystem.watch`), answered from inside the sandbox with
 * inotifywait (inotify-tools), never a host watcher on sandbox paths. Modal's tool watches with
 * the Rust `notify` crate and prints one JSON line `{event_type, paths}` per event; the event
 * kinds are notify's: `Access` (open, close after write), `Create`, `Modify` (content and
 * attributes), `Remove`, `Unknown` (the kernel queue overflowed), and for renames `Rename` with
 * `[source, destination]` when both are in scope, else `RenameFrom [source]` or
 * `RenameTo [destination]` (the SDK reports all three as `Modify`). The path is resolved first
 * (a symlink is followed, and events name paths under its target); a missing path is NotFound.
 * The command ends at `timeout_secs` (0: at once), when the client closes its stdin (the SDK
 * does when the iterator is closed), or with the sandbox. It answers TaskExecStart only once the
 * watches are established, so every change after the SDK's exec resolved is reported.
 */
import type { LocalSandbox } from '../../../adapters/local/index.js';
import type { SandboxProcess } from '../../../src/kit/index.js';
import { ExecRecord, type ExitInfo } from '../shared/exec-record.js';
import type { EmulatorFiles } from '../shared/file-tools.js';
import { OutputPipe } from '../shared/output-pipe.js';

export interface WatchRequest {
  path: string;
  recursive: boolean;
  /** Wire event types to report (the SDK adds the Rename variants to `Modify`); null: all. */
  filter: string[] | null;
  /** Whole seconds; null: until the client closes stdin. */
  timeoutSecs: number | null;
}

// The events notify's inotify backend subscribes to.
const inotifyEvents = ['open', 'close_write', 'modify', 'attrib', 'create', 'delete', 'moved_from', 'moved_to', 'delete_self', 'move_self'];

const wireKinds: Record<string, string> = {
  OPEN: 'Access',
  ACCESS: 'Access',
  CLOSE_WRITE: 'Access',
  CLOSE_NOWRITE: 'Access',
  CREATE: 'Create',
  MODIFY: 'Modify',
  ATTRIB: 'Modify',
  MOVE_SELF: 'Modify',
  DELETE: 'Remove',
  DELETE_SELF: 'Remove',
};

/** How long a move out of the tree waits for its other half before it is reported alone, in ms. */
const movePairingMs = 50;

const encoder = new TextEncoder();
const empty = new Uint8Array();

function failure(message: string, detail: string): ExecRecord {
  return ExecRecord.finished(empty, encoder.encode(JSON.stringify({ version: 1, error_kind: 'Io', message, detail })), 1);
}

/** Runs one Watch command; throws `FileToolError` for a path that cannot be watched. */
export async function runWatch(sandbox: LocalSandbox, files: EmulatorFiles, request: WatchRequest): Promise<ExecRecord> {
  const root = await files.realPath(request.path);
  if (request.timeoutSecs !== null && request.timeoutSecs <= 0) return ExecRecord.finished(empty, empty, 0);

  const argv = ['inotifywait', '-m', ...(request.recursive ? ['-r'] : []), '--format', '%e%0%w%f%0', '--no-newline'];
  for (const event of inotifyEvents) argv.push('-e', event);
  const script = 'command -v inotifywait >/dev/null 2>&1 || exit 127; exec "$@"';
  const process = await sandbox.exec(['/bin/sh', '-c', script, 'watch', ...argv, '--', root], { env: { LC_ALL: 'C' } });
  void process.stdin.close().catch(() => undefined);

  const established = await waitEstablished(process);
  if (established !== true) {
    await process.kill().catch(() => undefined);
    const { exitCode } = await process.wait().catch(() => ({ exitCode: -1 }));
    if (exitCode === 127) {
      return failure(
        'the Modal emulator watches with inotifywait, which this sandbox image lacks: install inotify-tools in the image',
        established,
      );
    }
    return failure(`inotifywait could not watch ${root}`, established);
  }
  return new WatchExec(process, root, request).record;
}

/** Resolves true once inotifywait says the watches are set, or to its error output if it ends first. */
async function waitEstablished(process: SandboxProcess): Promise<true | string> {
  const reader = process.stderr.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const next = await reader.read();
    if (next.done) return text.trim();
    text += decoder.decode(next.value, { stream: true });
    if (text.includes('Watches established.')) {
      // Keep draining, so that later warnings never stall the watcher on a full pipe.
      reader.releaseLock();
      void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
      return true;
    }
    if (text.length > 16_000) text = text.slice(-8000);
  }
}

interface WireEvent {
  event_type: string;
  paths: string[];
}

/** One running watch: inotifywait's records in, the tool's JSON lines out, and when it ends. */
class WatchExec {
  readonly record: ExecRecord;
  private readonly records: AsyncIterator<[string, string]>;
  private pendingRecord: Promise<IteratorResult<[string, string]>> | undefined;
  private heldMove: string | undefined;
  private stopped = false;
  private markStopped!: () => void;
  private readonly stoppedSignal = new Promise<void>((resolve) => (this.markStopped = resolve));
  private finish!: (exit: ExitInfo) => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly process: SandboxProcess,
    private readonly root: string,
    request: WatchRequest,
  ) {
    this.records = parseRecords(process.stdout)[Symbol.asyncIterator]();
    const exited = new Promise<ExitInfo>((resolve) => (this.finish = resolve));
    const filter = request.filter === null ? undefined : new Set(request.filter);
    const stdout = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          for (;;) {
            const events = await this.nextEvents();
            if (events === null) return controller.close();
            const lines = events.filter((event) => !filter || filter.has(event.event_type)).map((event) => `${JSON.stringify(event)}\n`);
            if (lines.length > 0) return controller.enqueue(encoder.encode(lines.join('')));
          }
        },
        cancel: () => this.stop(),
      },
      { highWaterMark: 0 },
    );
    // The client closing stdin is how the SDK ends a watch it no longer iterates.
    const stdin = new WritableStream<Uint8Array>({ close: () => this.stop(), abort: () => this.stop() });
    this.record = new ExecRecord({ stdout: new OutputPipe(stdout), stderr: new OutputPipe(), exited, stdin });
    if (request.timeoutSecs !== null) this.timer = setTimeout(() => void this.stop(), request.timeoutSecs * 1000);
    // Like notify, the watch outlives its root (a deleted root just reports nothing more); only
    // the sandbox going away ends it early.
    process.wait().then(
      () => undefined,
      (error: unknown) => {
        this.stopped = true;
        this.markStopped();
        clearTimeout(this.timer);
        this.finish({ gone: error instanceof Error ? error.message : String(error) });
      },
    );
  }

  private async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.markStopped();
    clearTimeout(this.timer);
    await this.process.kill().catch(() => undefined);
    // The exit is reported once the watcher is gone, so a closed watch leaves nothing running.
    await this.process.wait().catch(() => undefined);
    this.finish({ code: 0 });
  }

  /** The next events to report (possibly none), or null once the watcher's output ended. */
  private async nextEvents(): Promise<WireEvent[] | null> {
    const pending = (this.pendingRecord ??= this.records.next());
    if (this.heldMove !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), movePairingMs)));
      const raced = await Promise.race([pending, late]);
      clearTimeout(timer);
      if (raced === 'late') return [this.releaseMove()];
    }
    this.pendingRecord = undefined;
    const result = await pending;
    if (result.done) {
      if (this.heldMove !== undefined) return [this.releaseMove()];
      // inotifywait ends by itself when its root goes; notify's watch reports nothing more but
      // runs on until the timeout or the client's close, and so does this one.
      await this.stoppedSignal;
      return null;
    }
    const [events, rawPath] = result.value;
    const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
    const names = events.split(',').filter((name) => name !== 'ISDIR' && name !== 'CLOSE');
    const name = names[0] ?? '';
    const out: WireEvent[] = [];
    if (name === 'MOVED_TO') {
      if (this.heldMove !== undefined) {
        out.push({ event_type: 'Rename', paths: [this.heldMove, path] });
        this.heldMove = undefined;
      } else {
        out.push({ event_type: 'RenameTo', paths: [path] });
      }
      return out;
    }
    if (this.heldMove !== undefined) out.push(this.releaseMove());
    if (name === 'MOVED_FROM') this.heldMove = path;
    else if (name === 'IGNORED') return out;
    else out.push({ event_type: wireKinds[name] ?? 'Unknown', paths: [path || this.root] });
    return out;
  }

  private releaseMove(): WireEvent {
    const source = this.heldMove!;
    this.heldMove = undefined;
    return { event_type: 'RenameFrom', paths: [source] };
  }
}

/** inotifywait's `%e\0%w%f\0` records. */
async function* parseRecords(stream: ReadableStream<Uint8Array>): AsyncGenerator<[string, string]> {
  const decoder = new TextDecoder();
  let buffer = '';
  const fields: string[] = [];
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    const parts = buffer.split('\0');
    buffer = parts.pop() ?? '';
    fields.push(...parts);
    while (fields.length >= 2) yield [fields.shift()!, fields.shift()!];
  }
}
