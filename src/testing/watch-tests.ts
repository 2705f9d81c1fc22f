import { existsSync, readdirSync } from 'node:fs';
import { SandboxFileNotFoundError, SandboxInvalidArgumentError } from '../errors/index.js';
import type { FileEvent, FileWatch, Sandbox } from '../spec/sandbox.js';
import { eventually, sandboxProcesses, type SuiteContext } from './context.js';

/** How long a stopped watcher may take to disappear (its process exits asynchronously). */
const settleMs = 15_000;

/**
 * Reads one watch's events through a single iterator, keeping every event seen. The tests never
 * wait on a clock: they read until the event they expect arrives (the test's time limit bounds
 * it), and prove an absence with a marker written afterwards (events arrive in order).
 */
class EventReader {
  readonly seen: FileEvent[] = [];
  readonly #iterator: AsyncIterator<FileEvent>;

  constructor(readonly watch: FileWatch) {
    this.#iterator = watch[Symbol.asyncIterator]();
  }

  /** The next event, or `undefined` when the iteration ended. */
  async next(): Promise<FileEvent | undefined> {
    const next = await this.#iterator.next();
    if (next.done) return undefined;
    this.seen.push(next.value);
    return next.value;
  }

  /** Reads until an event matches; fails if the iteration ends first. */
  async until(match: (event: FileEvent) => boolean, what: string): Promise<FileEvent> {
    for (;;) {
      const event = await this.next();
      if (!event) throw new Error(`the watch ended before ${what}; events seen: ${JSON.stringify(this.seen)}`);
      if (match(event)) return event;
    }
  }

  /** Reads until an event about `path` of one of `types` arrives. */
  untilEvent(path: string, types: readonly FileEvent['type'][]): Promise<FileEvent> {
    return this.until((event) => event.path === path && types.includes(event.type), `${types.join(' or ')} of ${path}`);
  }

  /** Every event seen from index `from` on. */
  since(from: number): FileEvent[] {
    return this.seen.slice(from);
  }
}

/** Command lines in `after` that were not in `before` (the listing's own commands excepted). */
function newProcesses(before: readonly string[], after: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of before) counts.set(line, (counts.get(line) ?? 0) + 1);
  const added: string[] = [];
  for (const line of after) {
    const left = counts.get(line) ?? 0;
    if (left > 0) counts.set(line, left - 1);
    else if (!line.includes('/proc/[0-9]*') && !line.startsWith('tr ')) added.push(line);
  }
  return added;
}

/** This process's open file descriptors, where /proc tells (otherwise 0: nothing to compare). */
function openDescriptors(): number {
  return existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0;
}

export function watchTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const unsupported = context.capabilities.files.watch ? undefined : 'provider has no files.watch';
  const test = (id: string, title: string, body: () => Promise<void>) => context.test(id, title, body, unsupported);

  describe('watch', () => {
    const shared = context.sharedSandbox({ workdir: '/workspace' });
    let directories = 0;
    /** A fresh, empty directory per test, so that no test sees another's changes. */
    const freshDirectory = async (sandbox: Sandbox): Promise<string> => {
      const path = `/workspace/watch-${context.runId}-${directories++}`;
      await sandbox.files.mkdir(path);
      return path;
    };
    const sh = async (sandbox: Sandbox, script: string, ...args: string[]) => {
      const result = await sandbox.run(['/bin/sh', '-c', script, 'sh', ...args]);
      expect(result.exitCode, `${script}: ${result.stderr}`).toBe(0);
    };
    const watchOf = (sandbox: Sandbox) => {
      const watch = sandbox.files.watch;
      if (!watch) throw new Error('sandbox.files.watch is missing although capabilities.files.watch is true');
      return watch.bind(sandbox.files);
    };
    let markers = 0;
    /** Creates a marker file in `directory` and reads until its event; returns the events before it. */
    const throughMarker = async (sandbox: Sandbox, reader: EventReader, directory: string): Promise<FileEvent[]> => {
      const marker = `${directory}/marker-${markers++}`;
      const from = reader.seen.length;
      await sh(sandbox, ': > "$1"', marker);
      await reader.until((event) => event.path === marker, `the marker ${marker}`);
      return reader.since(from).filter((event) => event.path !== marker);
    };

    test('watch.create', 'a file created through files.write and through exec, and a directory, are create events', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      await using watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sandbox.files.write(`${directory}/written.txt`, 'from files.write');
      expect(await reader.untilEvent(`${directory}/written.txt`, ['create'])).toEqual({ type: 'create', path: `${directory}/written.txt` });
      await sh(sandbox, 'printf "from exec" > "$1"', `${directory}/exec.txt`);
      await reader.untilEvent(`${directory}/exec.txt`, ['create']);
      await sh(sandbox, 'mkdir -- "$1"', `${directory}/sub`);
      await reader.untilEvent(`${directory}/sub`, ['create']);
    });

    test('watch.modify', 'changing an existing file through exec and through files.write is a modify event', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const file = `${directory}/existing.txt`;
      await sandbox.files.write(file, 'first');
      await using watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sh(sandbox, 'printf " appended" >> "$1"', file);
      expect(await reader.untilEvent(file, ['modify'])).toEqual({ type: 'modify', path: file });
      await throughMarker(sandbox, reader, directory);
      await sandbox.files.write(file, 'replaced through files.write');
      await reader.untilEvent(file, ['modify']);
    });

    test('watch.remove', 'deleting through files.remove and through exec is a remove event', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      await sandbox.files.write(`${directory}/api.txt`, 'x');
      await sandbox.files.write(`${directory}/exec.txt`, 'x');
      await using watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sandbox.files.remove(`${directory}/api.txt`);
      expect(await reader.untilEvent(`${directory}/api.txt`, ['remove'])).toEqual({ type: 'remove', path: `${directory}/api.txt` });
      await sh(sandbox, 'rm -- "$1"', `${directory}/exec.txt`);
      await reader.untilEvent(`${directory}/exec.txt`, ['remove']);
    });

    test('watch.rename', 'a move inside the watched directory is one rename event with oldPath', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      await sandbox.files.write(`${directory}/before.txt`, 'x');
      await using watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sh(sandbox, 'mv -- "$1" "$2"', `${directory}/before.txt`, `${directory}/after.txt`);
      const event = await reader.until(
        (candidate) => candidate.path === `${directory}/after.txt` || candidate.oldPath === `${directory}/before.txt`,
        'the rename',
      );
      expect(event).toEqual({ type: 'rename', path: `${directory}/after.txt`, oldPath: `${directory}/before.txt` });
      // Reported once: no separate remove of the old path nor create of the new one.
      const rest = await throughMarker(sandbox, reader, directory);
      expect(rest.filter((other) => other.type === 'remove' || other.type === 'create')).toEqual([]);
    });

    test(
      'watch.move-in-out',
      'moving in from outside is create, moving out is remove (modify where the provider cannot tell)',
      async () => {
        const sandbox = shared();
        const directory = await freshDirectory(sandbox);
        const outside = await freshDirectory(sandbox);
        await sandbox.files.write(`${outside}/incoming.txt`, 'x');
        await sandbox.files.write(`${directory}/outgoing.txt`, 'x');
        await using watch = await watchOf(sandbox)(directory);
        const reader = new EventReader(watch);
        await sh(sandbox, 'mv -- "$1" "$2"', `${outside}/incoming.txt`, `${directory}/incoming.txt`);
        await reader.untilEvent(`${directory}/incoming.txt`, ['create', 'modify']);
        await sh(sandbox, 'mv -- "$1" "$2"', `${directory}/outgoing.txt`, `${outside}/outgoing.txt`);
        await reader.untilEvent(`${directory}/outgoing.txt`, ['remove', 'modify']);
        expect(reader.seen.filter((event) => event.path.startsWith(`${outside}/`))).toEqual([]);
      },
    );

    test('watch.not-recursive', 'without recursive, a change in a subdirectory is not reported', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      await sandbox.files.mkdir(`${directory}/sub`);
      await using watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sandbox.files.write(`${directory}/sub/nested.txt`, 'x');
      await sh(sandbox, 'printf y >> "$1"', `${directory}/sub/nested.txt`);
      const before = await throughMarker(sandbox, reader, directory);
      expect(before.filter((event) => event.path.startsWith(`${directory}/sub/`))).toEqual([]);
    });

    test('watch.recursive', 'with recursive, changes at any depth are reported, in subdirectories created while watching too', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      await sandbox.files.mkdir(`${directory}/sub/deeper`);
      await using watch = await watchOf(sandbox)(directory, { recursive: true });
      const reader = new EventReader(watch);
      await sandbox.files.write(`${directory}/sub/deeper/nested.txt`, 'x');
      await reader.untilEvent(`${directory}/sub/deeper/nested.txt`, ['create']);
      await sh(sandbox, 'mkdir -- "$1"', `${directory}/later`);
      await reader.untilEvent(`${directory}/later`, ['create']);
      // A watcher may begin watching a new directory a moment after reporting it: write again
      // until a change inside it is reported (each round ends at a marker, so nothing waits on a clock).
      const inside = `${directory}/later/inside.txt`;
      for (let round = 0; ; round++) {
        await sh(sandbox, 'printf "%s" "$2" >> "$1"', inside, String(round));
        const events = await throughMarker(sandbox, reader, directory);
        if (events.some((event) => event.path === inside)) break;
      }
      const rename = `${directory}/sub/renamed.txt`;
      await sh(sandbox, 'mv -- "$1" "$2"', `${directory}/sub/deeper/nested.txt`, rename);
      expect(await reader.until((event) => event.path === rename, 'the nested rename')).toEqual({
        type: 'rename',
        path: rename,
        oldPath: `${directory}/sub/deeper/nested.txt`,
      });
    });

    test('watch.file', 'watching a single file reports its changes under its own path', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const file = `${directory}/single.txt`;
      await sandbox.files.write(file, 'start');
      await using watch = await watchOf(sandbox)(file);
      const reader = new EventReader(watch);
      await sandbox.files.write(`${directory}/neighbour.txt`, 'not watched');
      await sh(sandbox, 'printf " more" >> "$1"', file);
      expect(await reader.next()).toEqual({ type: 'modify', path: file });
      expect(reader.seen.filter((event) => event.path !== file)).toEqual([]);
    });

    test('watch.missing', 'watching a missing path is SandboxFileNotFoundError', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const error = await context.expectError(watchOf(sandbox)(`${directory}/nope`), SandboxFileNotFoundError);
      expect(error.path).toBe(`${directory}/nope`);
    });

    test('watch.relative', 'a relative path is SandboxInvalidArgumentError(path)', async () => {
      const sandbox = shared();
      const error = await context.expectError(watchOf(sandbox)('relative/dir'), SandboxInvalidArgumentError);
      expect(error.argument).toBe('path');
    });

    test('watch.break', 'breaking out of for await stops the watcher in the sandbox and leaks nothing on the host', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      // A first watch warms up what the provider opens lazily (connections, caches): not a leak.
      // (Of another directory: its watcher's command line must not stand in for this one's.)
      await (await watchOf(sandbox)(await freshDirectory(sandbox))).close();
      const processesBefore = await sandboxProcesses(sandbox);
      const descriptorsBefore = openDescriptors();
      const watch = await watchOf(sandbox)(directory);
      // One change that makes one event: nothing more is written to the watcher's output after it.
      await sh(sandbox, 'mkdir -- "$1"', `${directory}/trigger`);
      const received: FileEvent[] = [];
      for await (const event of watch) {
        received.push(event);
        break;
      }
      expect(received.length).toBe(1);
      let left: string[] = [];
      await eventually(async () => (left = newProcesses(processesBefore, await sandboxProcesses(sandbox))).length === 0, settleMs, 200);
      expect(left, 'processes left running in the sandbox').toEqual([]);
      let descriptors = 0;
      await eventually(() => (descriptors = openDescriptors()) <= descriptorsBefore, settleMs, 200);
      expect(descriptors, 'open file descriptors of this process').toBeLessThanOrEqual(descriptorsBefore);
      // A stopped watch stays stopped: iterating it again ends at once.
      expect(await watch[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
    });

    test('watch.abort', 'an abort rejects the pending iteration with signal.reason; an aborted signal rejects watch', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const aborted = new AbortController();
      const early = new Error('aborted before the watch started');
      aborted.abort(early);
      await expect(watchOf(sandbox)(directory, { signal: aborted.signal })).rejects.toBe(early);
      const controller = new AbortController();
      const reason = new Error('stop watching');
      const watch = await watchOf(sandbox)(directory, { signal: controller.signal });
      const pending = watch[Symbol.asyncIterator]().next();
      controller.abort(reason);
      await expect(pending).rejects.toBe(reason);
    });

    test('watch.close', 'close() ends the iteration (done) and is idempotent', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const processesBefore = await sandboxProcesses(sandbox);
      const watch = await watchOf(sandbox)(directory);
      const pending = watch[Symbol.asyncIterator]().next();
      await watch.close();
      expect(await pending).toEqual({ done: true, value: undefined });
      await watch.close();
      let left: string[] = [];
      await eventually(async () => (left = newProcesses(processesBefore, await sandboxProcesses(sandbox))).length === 0, settleMs, 200);
      expect(left, 'processes left running in the sandbox').toEqual([]);
    });

    test('watch.root-removed', 'removing the watched directory itself ends the iteration (done)', async () => {
      const sandbox = shared();
      const directory = await freshDirectory(sandbox);
      const watch = await watchOf(sandbox)(directory);
      const reader = new EventReader(watch);
      await sandbox.files.remove(directory, { recursive: true });
      while (await reader.next());
      expect(reader.seen.filter((event) => event.type === 'create' || event.type === 'rename')).toEqual([]);
    });

    test('watch.sandbox-end', 'the sandbox ending ends the iteration (done)', async () => {
      const sandbox = await context.create();
      const watch = await watchOf(sandbox)('/tmp');
      const pending = watch[Symbol.asyncIterator]().next();
      await sandbox.terminate();
      expect(await pending).toEqual({ done: true, value: undefined });
    });
  });
}
