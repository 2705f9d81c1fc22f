import { describe, expect, it } from 'vitest';
import {
  InotifyRecordSplitter,
  InotifyTranslator,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  splitInotifyRecords,
  watchViaExec,
  watcherMissingExit,
  type ExitStatus,
  type FileEvent,
  type InotifyRecord,
  type SandboxProcess,
  type SandboxStatus,
  type WatchHost,
} from '../../src/kit/index.js';

const encoder = new TextEncoder();
/** inotifywait's output for records given as `EVENTS|watched|name`. */
const output = (...records: string[]) => encoder.encode(records.map((record) => `${record.split('|').join('\0')}\0`).join(''));
const record = (events: string, watched: string, name = ''): InotifyRecord => ({ events: events.split(','), watched, name });

describe('InotifyRecordSplitter', () => {
  it('splits NUL-separated records; names with newlines, commas and spaces stay whole', () => {
    expect(splitInotifyRecords(output('CREATE|/w/|a\nb, c', 'CREATE,ISDIR|/w/|d'))).toEqual([
      record('CREATE', '/w/', 'a\nb, c'),
      record('CREATE,ISDIR', '/w/', 'd'),
    ]);
  });

  it('keeps a record cut anywhere across chunks, inside a multi-byte character too', () => {
    const bytes = output('MODIFY|/w/|ünï', 'DELETE_SELF|/w/|');
    for (let cut = 1; cut < bytes.byteLength; cut++) {
      const splitter = new InotifyRecordSplitter();
      const records = [...splitter.push(bytes.subarray(0, cut)), ...splitter.push(bytes.subarray(cut))];
      expect(records).toEqual([record('MODIFY', '/w/', 'ünï'), record('DELETE_SELF', '/w/')]);
      expect(splitter.pendingBytes).toBe(0);
    }
  });
});

/** Runs records through a translator at the given times; returns every event and the end. */
function translate(root: string, steps: Array<[record: InotifyRecord, now: number] | ['flush', number]>) {
  const translator = new InotifyTranslator({ root, movePairingMs: 50, burstMs: 200 });
  const events: FileEvent[] = [];
  for (const [step, now] of steps) {
    const result = step === 'flush' ? translator.flush(now) : translator.push(step, now);
    events.push(...result.events);
    if (result.end) return { events, end: result.end, translator };
  }
  return { events, end: undefined, translator };
}

describe('InotifyTranslator', () => {
  it('reports create, then one modify for the writes up to the close', () => {
    const { events } = translate('/w', [
      [record('CREATE', '/w/', 'f'), 0],
      [record('MODIFY', '/w/', 'f'), 1],
      [record('MODIFY', '/w/', 'f'), 2],
      [record('MODIFY', '/w/', 'f'), 3],
      [record('CLOSE_WRITE,CLOSE', '/w/', 'f'), 4],
    ]);
    expect(events).toEqual([
      { type: 'create', path: '/w/f' },
      { type: 'modify', path: '/w/f' },
    ]);
  });

  it('a writer that keeps the file open gets one modify per burstMs, when flushed', () => {
    const { events, translator } = translate('/w', [
      [record('MODIFY', '/w/', 'log'), 0],
      [record('MODIFY', '/w/', 'log'), 100],
    ]);
    expect(events).toEqual([]);
    expect(translator.nextDeadline()).toBe(200);
    expect(translator.flush(199).events).toEqual([]);
    expect(translator.flush(200).events).toEqual([{ type: 'modify', path: '/w/log' }]);
    expect(translator.nextDeadline()).toBeUndefined();
    expect(translator.push(record('MODIFY', '/w/', 'log'), 300).events).toEqual([]);
    expect(translator.push(record('CLOSE_WRITE,CLOSE', '/w/', 'log'), 310).events).toEqual([{ type: 'modify', path: '/w/log' }]);
    // A close with no write since is no change.
    expect(translator.push(record('CLOSE_WRITE,CLOSE', '/w/', 'log'), 320).events).toEqual([]);
  });

  it("reports a directory's metadata change at once (directories are never closed)", () => {
    expect(translate('/w', [[record('ATTRIB,ISDIR', '/w/', 'sub'), 0]]).events).toEqual([{ type: 'modify', path: '/w/sub' }]);
  });

  it('pairs MOVED_FROM with the MOVED_TO right after it into one rename', () => {
    const { events } = translate('/w', [
      [record('MOVED_FROM', '/w/', 'a'), 0],
      [record('MOVED_TO', '/w/sub/', 'b'), 0],
    ]);
    expect(events).toEqual([{ type: 'rename', path: '/w/sub/b', oldPath: '/w/a' }]);
  });

  it('a lone MOVED_FROM is a remove (moved out): at its deadline, or before the next other event', () => {
    const timed = translate('/w', [
      [record('MOVED_FROM', '/w/', 'a'), 0],
      ['flush', 49],
    ]);
    expect(timed.events).toEqual([]);
    expect(timed.translator.flush(50).events).toEqual([{ type: 'remove', path: '/w/a' }]);
    expect(
      translate('/w', [
        [record('MOVED_FROM', '/w/', 'a'), 0],
        [record('CREATE', '/w/', 'b'), 1],
      ]).events,
    ).toEqual([
      { type: 'remove', path: '/w/a' },
      { type: 'create', path: '/w/b' },
    ]);
    expect(
      translate('/w', [
        [record('MOVED_FROM', '/w/', 'a'), 0],
        [record('MOVED_FROM', '/w/', 'b'), 1],
        [record('MOVED_TO', '/w/', 'c'), 1],
      ]).events,
    ).toEqual([
      { type: 'remove', path: '/w/a' },
      { type: 'rename', path: '/w/c', oldPath: '/w/b' },
    ]);
  });

  it('a lone MOVED_TO is a create (moved in)', () => {
    expect(translate('/w', [[record('MOVED_TO', '/w/', 'in'), 0]]).events).toEqual([{ type: 'create', path: '/w/in' }]);
  });

  it('drops the self events of subdirectories (their parent reported them) and forgets writes under a removed one', () => {
    const { events, translator } = translate('/w', [
      [record('MODIFY', '/w/sub/', 'f'), 0],
      [record('ATTRIB,ISDIR', '/w/sub/'), 1],
      [record('DELETE', '/w/sub/', 'f'), 2],
      [record('DELETE_SELF', '/w/sub/'), 3],
      [record('DELETE,ISDIR', '/w/', 'sub'), 3],
    ]);
    expect(events).toEqual([
      { type: 'remove', path: '/w/sub/f' },
      { type: 'remove', path: '/w/sub' },
    ]);
    expect(translator.nextDeadline()).toBeUndefined();
  });

  it('ends after a remove of the root when the root itself is deleted or moved', () => {
    for (const self of ['DELETE_SELF', 'MOVE_SELF']) {
      const result = translate('/w', [
        [record('DELETE', '/w/', 'f'), 0],
        [record(self, '/w/'), 1],
        [record('CREATE', '/w/', 'late'), 2],
      ]);
      expect(result.events).toEqual([
        { type: 'remove', path: '/w/f' },
        { type: 'remove', path: '/w' },
      ]);
      expect(result.end).toBe('root-removed');
      expect(result.translator.push(record('CREATE', '/w/', 'late'), 3).events).toEqual([]);
    }
  });

  it('reports a watched file under its own path', () => {
    const { events, end } = translate('/w/file', [
      [record('MODIFY', '/w/file'), 0],
      [record('CLOSE_WRITE,CLOSE', '/w/file'), 1],
      [record('ATTRIB', '/w/file'), 2],
      [record('DELETE_SELF', '/w/file'), 3],
    ]);
    expect(events).toEqual([
      { type: 'modify', path: '/w/file' },
      { type: 'remove', path: '/w/file' },
    ]);
    expect(end).toBe('root-removed');
  });

  it('ends with overflow on Q_OVERFLOW', () => {
    expect(translate('/w', [[record('Q_OVERFLOW', ''), 0]]).end).toBe('overflow');
  });

  it('joins paths under the root directory /', () => {
    expect(translate('/', [[record('CREATE', '/', 'top'), 0]]).events).toEqual([{ type: 'create', path: '/top' }]);
  });
});

/** A scripted watcher process: the test writes its stdout and stderr, and sees what was read and killed. */
function fakeWatcher(options: { exitCode?: number; stderr?: string; ready?: boolean } = {}) {
  const state = { argv: [] as readonly string[], killed: false, pulls: 0 };
  let stdout!: ReadableStreamDefaultController<Uint8Array>;
  let stderr!: ReadableStreamDefaultController<Uint8Array>;
  let exit!: (status: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((resolve) => (exit = resolve));
  const end = (status: ExitStatus) => {
    exit(status);
    for (const controller of [stdout, stderr]) {
      try {
        controller.close();
      } catch {
        // already closed or cancelled
      }
    }
  };
  const process: SandboxProcess = {
    stdin: new WritableStream(),
    stdout: new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (stdout = controller),
        pull: () => void state.pulls++,
      },
      { highWaterMark: 0 },
    ),
    stderr: new ReadableStream<Uint8Array>({
      start(controller) {
        stderr = controller;
        controller.enqueue(encoder.encode(`Setting up watches.\n${options.stderr ?? ''}`));
        if (options.ready !== false) controller.enqueue(encoder.encode('Watches established.\n'));
      },
    }),
    wait: () => exited,
    async kill() {
      state.killed = true;
      end({ exitCode: 137, signal: 'SIGKILL' });
    },
    async [Symbol.asyncDispose]() {},
  };
  if (options.exitCode !== undefined) queueMicrotask(() => end({ exitCode: options.exitCode!, signal: undefined }));
  let status: SandboxStatus = { state: 'running' };
  const host: WatchHost = {
    async exec(command) {
      state.argv = command as readonly string[];
      return process;
    },
    poll: async () => status,
  };
  return {
    host,
    state,
    emit: (...records: string[]) => stdout.enqueue(output(...records)),
    /** The watcher ends by itself, the sandbox still running unless `sandboxEnded`. */
    stop(sandboxEnded: boolean) {
      if (sandboxEnded) status = { state: 'terminated', reason: 'terminated' };
      end({ exitCode: 1, signal: undefined });
    },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
const settings = { provider: 'fake', movePairingMs: 5, burstMs: 1_000 };

describe('watchViaExec', () => {
  it('runs inotifywait inside the sandbox on the normalised path, recursive when asked, and streams events', async () => {
    const watcher = fakeWatcher();
    const watch = await watchViaExec(watcher.host, '/w/./sub/', { recursive: true }, settings);
    expect(watcher.state.argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(watcher.state.argv[2]).toContain('exec inotifywait -m');
    expect(watcher.state.argv.slice(3)).toEqual(['watch', '/w/sub', '-r']);
    const iterator = watch[Symbol.asyncIterator]();
    watcher.emit('CREATE|/w/sub/|a', 'MOVED_FROM|/w/sub/|a', 'MOVED_TO|/w/sub/|b');
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'create', path: '/w/sub/a' } });
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'rename', path: '/w/sub/b', oldPath: '/w/sub/a' } });
    watcher.emit('MOVED_FROM|/w/sub/|b');
    // Its MOVED_TO never comes: a move out, after movePairingMs.
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'remove', path: '/w/sub/b' } });
    await watch.close();
    expect(watcher.state.killed).toBe(true);
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('validates the path and the options before starting anything', async () => {
    const watcher = fakeWatcher();
    await expect(watchViaExec(watcher.host, 'relative', {}, settings)).rejects.toSatisfy(
      (error) => SandboxInvalidArgumentError.isInstance(error) && error.argument === 'path',
    );
    await expect(watchViaExec(watcher.host, '/w', { recursive: 'yes' }, settings)).rejects.toSatisfy(
      (error) => SandboxInvalidArgumentError.isInstance(error) && error.argument === 'recursive',
    );
    await expect(watchViaExec(watcher.host, '/w', { depth: 1 }, settings)).rejects.toSatisfy((error) =>
      SandboxInvalidArgumentError.isInstance(error),
    );
    expect(watcher.state.argv).toEqual([]);
  });

  it('maps a missing path to SandboxFileNotFoundError and a missing tool to SandboxProviderError naming inotify-tools', async () => {
    const missingPath = fakeWatcher({ exitCode: 44, ready: false });
    const notFound = await watchViaExec(missingPath.host, '/nope', {}, settings).catch((error: unknown) => error);
    expect(SandboxFileNotFoundError.isInstance(notFound) && notFound.path).toBe('/nope');
    const missingTool = fakeWatcher({ exitCode: watcherMissingExit, ready: false });
    const noTool = await watchViaExec(missingTool.host, '/w', {}, settings).catch((error: unknown) => error);
    expect(SandboxProviderError.isInstance(noTool)).toBe(true);
    expect((noTool as Error).message).toContain('install inotify-tools');
    const tooMany = fakeWatcher({ exitCode: 1, ready: false, stderr: 'Failed to watch /w; upper limit on inotify watches reached!\n' });
    const limit = await watchViaExec(tooMany.host, '/w', {}, settings).catch((error: unknown) => error);
    expect(SandboxProviderError.isInstance(limit) && (limit as Error).message).toContain('upper limit on inotify watches');
  });

  it('hands out what was reported before a queue overflow, then rejects with SandboxProviderError', async () => {
    const watcher = fakeWatcher();
    const watch = await watchViaExec(watcher.host, '/w', {}, settings);
    watcher.emit('CREATE|/w/|a', 'Q_OVERFLOW||');
    await settle();
    const iterator = watch[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'create', path: '/w/a' } });
    await expect(iterator.next()).rejects.toSatisfy((error) => SandboxProviderError.isInstance(error) && /overflow/.test(String(error)));
    expect(watcher.state.killed).toBe(true);
  });

  it("stops reading the watcher's output while the queue is full (backpressure down to the sandbox)", async () => {
    const watcher = fakeWatcher();
    const watch = await watchViaExec(watcher.host, '/w', {}, { ...settings, queueLimit: 3 });
    for (let index = 0; index < 3; index++) watcher.emit(`CREATE|/w/|f${index}`);
    await settle();
    const pullsWhenFull = watcher.state.pulls;
    watcher.emit('CREATE|/w/|f3');
    await settle();
    expect(watcher.state.pulls).toBe(pullsWhenFull); // nothing more read until the consumer takes one
    const iterator = watch[Symbol.asyncIterator]();
    const paths: string[] = [];
    for (let index = 0; index < 4; index++) paths.push(((await iterator.next()).value as FileEvent).path);
    expect(paths).toEqual(['/w/f0', '/w/f1', '/w/f2', '/w/f3']);
    await watch.close();
  });

  it('an abort rejects the pending next() with signal.reason and kills the watcher', async () => {
    const watcher = fakeWatcher();
    const controller = new AbortController();
    const watch = await watchViaExec(watcher.host, '/w', { signal: controller.signal }, settings);
    const pending = watch[Symbol.asyncIterator]().next();
    const reason = new Error('enough');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(watch[Symbol.asyncIterator]().next()).rejects.toBe(reason);
    expect(watcher.state.killed).toBe(true);
  });

  it('ends (done) when the sandbox ended, and fails when the watcher died on its own', async () => {
    const ended = fakeWatcher();
    const watch = await watchViaExec(ended.host, '/w', {}, settings);
    const pending = watch[Symbol.asyncIterator]().next();
    ended.stop(true);
    expect(await pending).toEqual({ done: true, value: undefined });
    const died = fakeWatcher();
    const dying = await watchViaExec(died.host, '/w', {}, settings);
    const failing = dying[Symbol.asyncIterator]().next();
    died.stop(false);
    await expect(failing).rejects.toSatisfy((error) => SandboxProviderError.isInstance(error) && /stopped \(exit 1\)/.test(String(error)));
  });

  it('ends (done) after the remove of the root when the watched directory goes away', async () => {
    const watcher = fakeWatcher();
    const watch = await watchViaExec(watcher.host, '/w', {}, settings);
    watcher.emit('DELETE|/w/|f', 'DELETE_SELF|/w/|');
    const events: FileEvent[] = [];
    for await (const event of watch) events.push(event);
    expect(events).toEqual([
      { type: 'remove', path: '/w/f' },
      { type: 'remove', path: '/w' },
    ]);
    expect(watcher.state.killed).toBe(true);
  });

  it('coalesces the modifies a slow consumer has not taken yet', async () => {
    const watcher = fakeWatcher();
    const watch = await watchViaExec(watcher.host, '/w', {}, settings);
    for (let index = 0; index < 5; index++) watcher.emit('MODIFY|/w/|f', 'CLOSE_WRITE,CLOSE|/w/|f');
    watcher.emit('CREATE|/w/|g');
    await settle();
    const iterator = watch[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'modify', path: '/w/f' } });
    expect(await iterator.next()).toEqual({ done: false, value: { type: 'create', path: '/w/g' } });
    await watch.close();
  });
});
