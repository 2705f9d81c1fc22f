/**
 * The emulator's filesystem as a user of the real `modal` SDK sees it, through the SDK's own
 * `sb.filesystem` calls (no sandport adapter): Stat and ListFiles metadata, the error classes of
 * every call, the whole-file read limit (FileTooLarge) and `watch`. The emulator runs in its own
 * process, as in test/adapters/modal.test.ts, once with a small read limit and once with Modal's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ModalClient,
  SandboxFilesystemDirectoryNotEmptyError,
  SandboxFilesystemError,
  SandboxFilesystemFileTooLargeError,
  SandboxFilesystemIsADirectoryError,
  SandboxFilesystemNotADirectoryError,
  SandboxFilesystemNotFoundError,
  SandboxFilesystemPathAlreadyExistsError,
  SandboxFilesystemPermissionError,
  type App,
  type FileInfo,
  type FileWatchEvent,
  type Sandbox,
} from 'modal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modalReadFileLimitBytes } from './modal/modal-fs-tools.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from './modal/spawn.js';

const smallLimit = 1024 * 1024;
let emulator: ModalEmulatorProcess | undefined;
let client: ModalClient | undefined;
let app: App;
let sandbox: Sandbox;

/** Runs a shell command in the sandbox and fails the test unless it exits 0. */
async function sh(script: string, target: Sandbox = sandbox): Promise<string> {
  const process = await target.exec(['sh', '-c', script]);
  const [stdout, stderr, code] = await Promise.all([process.stdout.readText(), process.stderr.readText(), process.wait()]);
  if (code !== 0) throw new Error(`${script} exited ${code}: ${stderr}`);
  return stdout;
}

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

/** Collects a watch's events as they come, so a test can wait for the one it expects. */
class Watching {
  readonly events: FileWatchEvent[] = [];
  readonly ended: Promise<void>;
  private finished = false;
  private stopping = false;
  private changed: Promise<void>;
  private announce!: () => void;
  constructor(events: AsyncIterable<FileWatchEvent>) {
    this.changed = this.nextChange();
    const iterator = events[Symbol.asyncIterator]();
    this.ended = (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          this.events.push(next.value);
          this.announce();
          // Like a `break` in `for await`: the SDK's iterator can only be closed between events.
          if (this.stopping) return void (await iterator.return?.());
        }
      } finally {
        this.finished = true;
        this.announce();
      }
    })();
    this.ended.catch(() => undefined);
  }

  /** The first event at or after index `from` that matches; rejects if the watch ends first. */
  async until(match: (event: FileWatchEvent) => boolean, from = 0): Promise<FileWatchEvent> {
    for (let index = from; ; ) {
      for (; index < this.events.length; index++) if (match(this.events[index]!)) return this.events[index]!;
      if (this.finished) throw new Error(`the watch ended without the event; it saw ${JSON.stringify(this.events)}`);
      await this.changed;
    }
  }

  /**
   * Stops the watch as a `break` out of `for await` would, after the next event: `poke` makes
   * one (it runs until the watch ended).
   */
  async close(poke: string): Promise<void> {
    this.stopping = true;
    while (!this.finished) {
      await sh(poke);
      await Promise.race([this.ended.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 300))]);
    }
    await this.ended.catch(() => undefined);
  }

  private nextChange(): Promise<void> {
    return new Promise<void>(
      (resolve) =>
        (this.announce = () => {
          this.changed = this.nextChange();
          resolve();
        }),
    );
  }
}

/**
 * Resolves once the watch reports changes: the SDK starts the tool only when iteration begins,
 * and gives no sign that its watches are set, so the test changes `probe` (a shell command
 * touching the watched scope) until an event about it comes back. Returns the index after which
 * the test's own events start.
 */
async function established(watching: Watching, probe: (round: number) => string, marker: string): Promise<number> {
  for (let round = 0; ; round++) {
    await sh(probe(round));
    const seen = await Promise.race([
      watching
        .until((event) => event.paths.some((path) => path.includes(marker)))
        .then(
          () => true,
          () => true, // ended: the caller's own wait says how
        ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
    ]);
    if (seen) return watching.events.length;
  }
}

const probeIn = (dir: string) => (round: number) => `echo > ${dir}/.probe-${round} && rm ${dir}/.probe-${round}`;

function eventsSince(watching: Watching, from: number): FileWatchEvent[] {
  return watching.events.slice(from).filter((event) => !event.paths.some((path) => path.includes('.probe')));
}

const is =
  (type: FileWatchEvent['eventType'], ...paths: string[]) =>
  (event: FileWatchEvent) =>
    event.eventType === type && JSON.stringify(event.paths) === JSON.stringify(paths);

describe('modal emulator: sb.filesystem through the real SDK', () => {
  beforeAll(async () => {
    emulator = await spawnModalEmulator({ maxReadFileBytes: smallLimit });
    // The SDK reads its server URL from the environment when a client is made.
    process.env.MODAL_SERVER_URL = emulator.url;
    client = new ModalClient({ tokenId: 'ak-fs', tokenSecret: 'as-fs', logLevel: 'error' });
    app = await client.apps.fromName('sdk-filesystem', { createIfMissing: true });
    sandbox = await client.sandboxes.create(app, client.images.fromRegistry('debian:bookworm-slim'), { timeoutMs: 600_000 });
  }, 60_000);
  afterAll(async () => {
    await sandbox?.terminate().catch(() => undefined);
    client?.close();
    await emulator?.close();
  }, 120_000);

  describe('stat and listFiles', () => {
    const fileInfoFields = ['group', 'mode', 'modifiedTime', 'name', 'owner', 'path', 'permissions', 'size', 'symlinkTarget', 'type'];

    beforeAll(async () => {
      await sh(
        'mkdir -p /tmp/meta/dir && printf 12345 > /tmp/meta/file && chmod 4750 /tmp/meta/file && touch -d @1700000000.5 /tmp/meta/file && ln -s /tmp/meta/file /tmp/meta/link && chmod 1777 /tmp/meta/dir',
      );
    });

    it('stat reports every FileInfo field as Modal does, matching stat(1) in the sandbox', async () => {
      const info = await sandbox.filesystem.stat('/tmp/meta/file');
      expect(Object.keys(info).sort()).toEqual(fileInfoFields);
      const [size, rawMode, owner, group, mtime] = (await sh("stat -c '%s %f %U %G %.9Y' /tmp/meta/file")).trim().split(' ') as [
        string,
        string,
        string,
        string,
        string,
      ];
      expect(info).toEqual({
        name: 'file',
        path: '/tmp/meta/file',
        type: 'file',
        size: Number(size),
        mode: Number.parseInt(rawMode, 16),
        permissions: '4750',
        owner,
        group,
        modifiedTime: Number(mtime),
        symlinkTarget: null,
      } satisfies FileInfo);
      expect(info.mode).toBe(0o104750);
      expect(info.size).toBe(5);
      expect(info.modifiedTime).toBe(1700000000.5);
    });

    it('stat describes a symlink itself, with its target; a directory has its type bits and four-digit permissions', async () => {
      const link = await sandbox.filesystem.stat('/tmp/meta/link');
      expect(link).toMatchObject({
        name: 'link',
        type: 'symlink',
        size: '/tmp/meta/file'.length,
        symlinkTarget: '/tmp/meta/file',
        permissions: '0777',
      });
      expect(link.mode).toBe(0o120777);
      const dir = await sandbox.filesystem.stat('/tmp/meta/dir');
      expect(dir).toMatchObject({ name: 'dir', type: 'directory', permissions: '1777', symlinkTarget: null });
      expect(dir.mode).toBe(0o041777);
      const plain = await sandbox.filesystem.stat('/tmp');
      expect(plain.permissions).toMatch(/^0[0-7]{3}$/);
    });

    it('listFiles gives the same entries, sorted by name, with absolute paths', async () => {
      const entries = await sandbox.filesystem.listFiles('/tmp/meta/');
      expect(entries.map((entry) => [entry.name, entry.path, entry.type])).toEqual([
        ['dir', '/tmp/meta/dir', 'directory'],
        ['file', '/tmp/meta/file', 'file'],
        ['link', '/tmp/meta/link', 'symlink'],
      ]);
      for (const entry of entries) {
        expect(Object.keys(entry).sort()).toEqual(fileInfoFields);
        expect(entry).toEqual(await sandbox.filesystem.stat(entry.path));
      }
    });
  });

  describe('errors, as the SDK classes them', () => {
    beforeAll(async () => {
      await sh(
        'mkdir -p /tmp/err/full/inner /tmp/err/ro /tmp/err/shut && echo data > /tmp/err/file && touch /tmp/err/ro/kept /tmp/err/shut/in && echo s > /tmp/err/secret && chmod 000 /tmp/err/secret /tmp/err/shut && chmod 555 /tmp/err/ro',
      );
    });

    it('a path below a regular file is NotADirectory for every call, never NotFound', async () => {
      const fs = sandbox.filesystem;
      const below = '/tmp/err/file/below';
      for (const call of [
        () => fs.stat(below),
        () => fs.listFiles(below),
        () => fs.listFiles('/tmp/err/file'),
        () => fs.makeDirectory(below),
        () => fs.makeDirectory(below, { createParents: false }),
        () => fs.writeText('x', below),
        () => fs.writeText('x', `${below}/deeper`),
      ]) {
        expect(await failure(call())).toBeInstanceOf(SandboxFilesystemNotADirectoryError);
      }
      // readBytes and remove have no NotADirectory class in the SDK: Modal's kind reaches the
      // user as the base class with the tool's message, still not NotFound.
      for (const call of [() => fs.readBytes(below), () => fs.readText(below), () => fs.remove(below)]) {
        const error = await failure(call());
        expect(error).toBeInstanceOf(SandboxFilesystemError);
        expect(error).not.toBeInstanceOf(SandboxFilesystemNotFoundError);
        expect(error.message).toBe('a component of the path is not a directory');
      }
      expect((await failure(fs.stat(below))).message).toBe(`a component of the path is not a directory: ${below}`);
      expect((await failure(fs.listFiles('/tmp/err/file'))).message).toBe('expected a directory path: /tmp/err/file');
    });

    it('NotFound, IsADirectory, PathAlreadyExists and DirectoryNotEmpty where Modal raises them', async () => {
      const fs = sandbox.filesystem;
      for (const call of [
        () => fs.readBytes('/tmp/err/missing'),
        () => fs.stat('/tmp/err/missing'),
        () => fs.listFiles('/tmp/err/missing'),
        () => fs.remove('/tmp/err/missing'),
        () => fs.makeDirectory('/tmp/err/missing/sub', { createParents: false }),
      ]) {
        expect(await failure(call())).toBeInstanceOf(SandboxFilesystemNotFoundError);
      }
      expect((await failure(fs.readBytes('/tmp/err/missing'))).message).toBe('path does not exist: /tmp/err/missing');
      expect(await failure(fs.readBytes('/tmp/err/full'))).toBeInstanceOf(SandboxFilesystemIsADirectoryError);
      expect(await failure(fs.writeText('x', '/tmp/err/full'))).toBeInstanceOf(SandboxFilesystemIsADirectoryError);
      expect(await failure(fs.makeDirectory('/tmp/err/full', { createParents: false }))).toBeInstanceOf(
        SandboxFilesystemPathAlreadyExistsError,
      );
      expect(await failure(fs.makeDirectory('/tmp/err/file'))).toBeInstanceOf(SandboxFilesystemPathAlreadyExistsError);
      await fs.makeDirectory('/tmp/err/full'); // with parents (the default) an existing directory is fine
      expect(await failure(fs.remove('/tmp/err/full'))).toBeInstanceOf(SandboxFilesystemDirectoryNotEmptyError);
      await fs.remove('/tmp/err/full', { recursive: true });
      expect(await failure(fs.stat('/tmp/err/full'))).toBeInstanceOf(SandboxFilesystemNotFoundError);
    });

    it('PermissionDenied where the sandbox user may not', async () => {
      const fs = sandbox.filesystem;
      for (const call of [
        () => fs.readBytes('/tmp/err/secret'),
        () => fs.writeText('x', '/tmp/err/ro/new'),
        () => fs.makeDirectory('/tmp/err/ro/sub', { createParents: false }),
        () => fs.makeDirectory('/tmp/err/ro/sub/deeper'),
        () => fs.remove('/tmp/err/ro/kept'),
        () => fs.listFiles('/tmp/err/shut'),
        () => fs.stat('/tmp/err/shut/in'),
      ]) {
        expect(await failure(call())).toBeInstanceOf(SandboxFilesystemPermissionError);
      }
    });
  });

  describe('the whole-file read limit', () => {
    it('a file at the limit reads whole; one byte more is FileTooLarge for readBytes, readText and copyToLocal', async () => {
      await sh(`head -c ${smallLimit} /dev/urandom > /tmp/at-limit && head -c ${smallLimit + 1} /dev/zero > /tmp/over-limit`);
      expect((await sandbox.filesystem.readBytes('/tmp/at-limit')).byteLength).toBe(smallLimit);
      const error = await failure(sandbox.filesystem.readBytes('/tmp/over-limit'));
      expect(error).toBeInstanceOf(SandboxFilesystemFileTooLargeError);
      expect(error.message).toBe(`file is ${smallLimit + 1} bytes, which exceeds the ${smallLimit} byte limit: /tmp/over-limit`);
      expect(await failure(sandbox.filesystem.readText('/tmp/over-limit'))).toBeInstanceOf(SandboxFilesystemFileTooLargeError);
      const local = await mkdtemp(join(tmpdir(), 'sdk-fs-'));
      try {
        expect(await failure(sandbox.filesystem.copyToLocal('/tmp/over-limit', join(local, 'copy')))).toBeInstanceOf(
          SandboxFilesystemFileTooLargeError,
        );
      } finally {
        await rm(local, { recursive: true, force: true });
      }
    });

    it('a file without end (/dev/zero, size 0) fails once it passed the limit instead of filling the client', async () => {
      const error = await failure(sandbox.filesystem.readBytes('/dev/zero'));
      expect(error).toBeInstanceOf(SandboxFilesystemError);
      expect(error).not.toBeInstanceOf(SandboxFilesystemFileTooLargeError);
    });

    it('the default limit is Modal’s 5 GiB, decided from the size alone (a sparse file is never read)', async () => {
      expect(modalReadFileLimitBytes).toBe(5 * 1024 ** 3);
      const defaults = await spawnModalEmulator();
      const previous = process.env.MODAL_SERVER_URL;
      process.env.MODAL_SERVER_URL = defaults.url;
      const other = new ModalClient({ tokenId: 'ak-fs-2', tokenSecret: 'as-fs-2', logLevel: 'error' });
      process.env.MODAL_SERVER_URL = previous;
      try {
        const otherApp = await other.apps.fromName('sdk-filesystem-defaults', { createIfMissing: true });
        const big = await other.sandboxes.create(otherApp, other.images.fromRegistry('debian:bookworm-slim'));
        await sh(`truncate -s ${modalReadFileLimitBytes + 1} /tmp/sparse && printf small > /tmp/small`, big);
        const error = await failure(big.filesystem.readBytes('/tmp/sparse'));
        expect(error).toBeInstanceOf(SandboxFilesystemFileTooLargeError);
        expect(error.message).toBe(
          `file is ${modalReadFileLimitBytes + 1} bytes, which exceeds the ${modalReadFileLimitBytes} byte limit: /tmp/sparse`,
        );
        expect(await big.filesystem.readText('/tmp/small')).toBe('small');
        await big.terminate();
      } finally {
        other.close();
        await defaults.close();
      }
    }, 120_000);
  });

  describe('watch', () => {
    it('reports Create, Access, Modify and Remove for a file’s life in the watched directory', async () => {
      await sh('mkdir -p /tmp/w-kinds');
      const watching = new Watching(sandbox.filesystem.watch('/tmp/w-kinds'));
      try {
        const from = await established(watching, probeIn('/tmp/w-kinds'), '.probe');
        const file = '/tmp/w-kinds/f.txt';
        await sh(`printf hello > ${file}`);
        await watching.until(is('Create', file), from);
        await watching.until(is('Modify', file), from);
        await watching.until(is('Access', file), from);
        const beforeChmod = watching.events.length;
        await sh(`chmod 600 ${file}`);
        await watching.until(is('Modify', file), beforeChmod);
        const beforeRead = watching.events.length;
        await sh(`cat ${file} > /dev/null`);
        await watching.until(is('Access', file), beforeRead);
        await sh(`rm ${file}`);
        await watching.until(is('Remove', file), from);
        for (const event of eventsSince(watching, from)) expect(['Access', 'Create', 'Modify', 'Remove']).toContain(event.eventType);
      } finally {
        await watching.close('touch /tmp/w-kinds/.poke');
      }
    });

    it('without recursive a change in a subdirectory is not reported; with it, it is', async () => {
      await sh('mkdir -p /tmp/w-rec/sub');
      const flat = new Watching(sandbox.filesystem.watch('/tmp/w-rec'));
      const deep = new Watching(sandbox.filesystem.watch('/tmp/w-rec', { recursive: true }));
      try {
        const flatFrom = await established(flat, probeIn('/tmp/w-rec'), '.probe');
        const deepFrom = await established(deep, probeIn('/tmp/w-rec/sub'), '.probe');
        await sh('echo x > /tmp/w-rec/sub/nested && echo y > /tmp/w-rec/top');
        await deep.until(is('Create', '/tmp/w-rec/sub/nested'), deepFrom);
        // The top-level change comes after the nested one: once it is seen, the nested one would have been.
        await flat.until(is('Create', '/tmp/w-rec/top'), flatFrom);
        expect(eventsSince(flat, flatFrom).filter((event) => event.paths.some((path) => path.startsWith('/tmp/w-rec/sub/')))).toEqual([]);
      } finally {
        await Promise.all([flat.close('touch /tmp/w-rec/.poke'), deep.close('touch /tmp/w-rec/.poke')]);
      }
    });

    it('filter keeps the kinds it names; an empty filter reports nothing', async () => {
      await sh('mkdir -p /tmp/w-filter');
      const creates = new Watching(sandbox.filesystem.watch('/tmp/w-filter', { filter: ['Create'] }));
      const all = new Watching(sandbox.filesystem.watch('/tmp/w-filter'));
      try {
        const from = await established(creates, probeIn('/tmp/w-filter'), '.probe');
        const allFrom = await established(all, probeIn('/tmp/w-filter'), '.probe');
        const none = new Watching(sandbox.filesystem.watch('/tmp/w-filter', { filter: [], timeoutMs: 2000 }));
        await sh('for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > /tmp/w-filter/f$i; rm /tmp/w-filter/f$i; sleep 0.2; done');
        await creates.until(is('Create', '/tmp/w-filter/f10'), from);
        await all.until(is('Remove', '/tmp/w-filter/f10'), allFrom);
        expect(new Set(eventsSince(creates, from).map((event) => event.eventType))).toEqual(new Set(['Create']));
        await none.ended;
        expect(none.events).toEqual([]);
      } finally {
        await Promise.all([creates.close('touch /tmp/w-filter/.poke-$$'), all.close('touch /tmp/w-filter/.poke')]);
      }
    });

    it('timeoutMs: zero returns at once; otherwise the iterator ends without error at the timeout (whole seconds)', async () => {
      await sh('mkdir -p /tmp/w-timeout');
      const immediate: FileWatchEvent[] = [];
      for await (const event of sandbox.filesystem.watch('/tmp/w-timeout', { timeoutMs: 0 })) immediate.push(event);
      expect(immediate).toEqual([]);
      const short: FileWatchEvent[] = [];
      for await (const event of sandbox.filesystem.watch('/tmp/w-timeout', { timeoutMs: 1500 })) short.push(event);
      expect(short).toEqual([]);
    });

    it('a missing path is NotFound', async () => {
      const iterate = async () => {
        for await (const _event of sandbox.filesystem.watch('/tmp/w-missing/nowhere')) return;
      };
      const error = await failure(iterate());
      expect(error).toBeInstanceOf(SandboxFilesystemNotFoundError);
      expect(error.message).toBe('path does not exist: /tmp/w-missing/nowhere');
    });

    it('a file path watches that file; a symlink is followed and events name paths under its target', async () => {
      await sh('mkdir -p /tmp/w-target && echo 0 > /tmp/w-file && ln -sfn /tmp/w-target /tmp/w-link');
      const file = new Watching(sandbox.filesystem.watch('/tmp/w-file'));
      const linked = new Watching(sandbox.filesystem.watch('/tmp/w-link'));
      try {
        const fileFrom = await established(file, (round) => `echo ${round} >> /tmp/w-file`, '/tmp/w-file');
        await sh('echo more >> /tmp/w-file');
        await file.until(is('Modify', '/tmp/w-file'), fileFrom);
        const linkFrom = await established(linked, probeIn('/tmp/w-link'), '.probe');
        await sh('echo x > /tmp/w-link/through-link');
        await linked.until(is('Create', '/tmp/w-target/through-link'), linkFrom);
        expect(linked.events.every((event) => event.paths.every((path) => path.startsWith('/tmp/w-target/')))).toBe(true);
      } finally {
        await Promise.all([file.close('echo poke >> /tmp/w-file'), linked.close('touch /tmp/w-target/.poke')]);
      }
    });

    it('renames are Modify: [source, destination] inside the scope, the one path for a move out or in', async () => {
      await sh('mkdir -p /tmp/w-mv /tmp/w-outside && echo a > /tmp/w-mv/a && echo c > /tmp/w-outside/c');
      const watching = new Watching(sandbox.filesystem.watch('/tmp/w-mv'));
      try {
        const from = await established(watching, probeIn('/tmp/w-mv'), '.probe');
        await sh('mv /tmp/w-mv/a /tmp/w-mv/b');
        await watching.until(is('Modify', '/tmp/w-mv/a', '/tmp/w-mv/b'), from);
        await sh('mv /tmp/w-mv/b /tmp/w-outside/b');
        await watching.until(is('Modify', '/tmp/w-mv/b'), from);
        await sh('mv /tmp/w-outside/c /tmp/w-mv/c');
        await watching.until(is('Modify', '/tmp/w-mv/c'), from);
        expect(eventsSince(watching, from)).toEqual([
          { eventType: 'Modify', paths: ['/tmp/w-mv/a', '/tmp/w-mv/b'] },
          { eventType: 'Modify', paths: ['/tmp/w-mv/b'] },
          { eventType: 'Modify', paths: ['/tmp/w-mv/c'] },
        ]);
      } finally {
        await watching.close('touch /tmp/w-mv/.poke');
      }
    });

    it('closing the iterator ends the watcher inside the sandbox', async () => {
      // inotifywait processes that are not zombies (an ended one waits for its reaper outside).
      const runningWatchers = "cat /proc/[0-9]*/stat 2>/dev/null | grep '(inotifywait)' | grep -vc ') Z ' || true";
      await sh('mkdir -p /tmp/w-close');
      const watching = new Watching(sandbox.filesystem.watch('/tmp/w-close'));
      await established(watching, probeIn('/tmp/w-close'), '.probe');
      expect(await sh(runningWatchers)).not.toBe('0\n');
      await watching.close('touch /tmp/w-close/.poke');
      // Every other watch of this file was closed before: none is left running.
      // The local provider may report the exit a moment before the kernel shows the process gone.
      let running = await sh(runningWatchers);
      for (let attempt = 0; running !== '0\n' && attempt < 50; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        running = await sh(runningWatchers);
      }
      expect(running).toBe('0\n');
    });
  });
});
