/**
 * The emulator's filesystem as a user of the real `e2b` SDK sees it, through the SDK's own
 * `sandbox.files` calls (no sandport adapter): bytes, text, blobs and streams both ways (octet
 * stream, multipart, gzip), a 64 MiB round trip, entry metadata, listing depth, users and their
 * paths, the error classes of every call, directory watches (streamed, and the polling watcher
 * through raw Connect calls), signed URLs fetched as they are, and /health of a live and a dead
 * sandbox.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { get, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  AuthenticationError,
  FileNotFoundError,
  FileType,
  FilesystemEventType,
  InvalidArgumentError,
  Sandbox,
  TimeoutError,
  type EntryInfo,
  type FilesystemEvent,
} from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir } from './e2b/e2b-templates.js';
import { spawnE2bEmulator } from './e2b/spawn.js';

const baseBuilt = existsSync(join(e2bImagesDir(), 'base', '.sandport-complete')) && process.getuid?.() === 0;
const needsBase = baseBuilt ? '' : ' (skipped: needs root and the base rootfs of scripts/build-e2b-images.sh)';
// The emulator pauses with the local provider's pause().
const canPause = createLocalSandboxProvider().capabilities.pause;
const needsPause = canPause ? '' : ' (skipped: the local provider cannot pause: capabilities.pause is false)';

let emulator: E2bEmulator;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
let sandbox: Sandbox;
const sandboxes: Sandbox[] = [];

async function create(): Promise<Sandbox> {
  const created = await Sandbox.create('base', { ...options, timeoutMs: 300_000 });
  sandboxes.push(created);
  return created;
}

beforeAll(async () => {
  emulator = await startE2bEmulator();
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
  if (baseBuilt) sandbox = await create();
});

afterAll(async () => {
  for (const created of sandboxes) await created.kill().catch(() => undefined);
  await emulator?.close();
});

/** Runs a shell command in the sandbox as root and fails the test unless it exits 0. */
async function sh(script: string, target: Sandbox = sandbox): Promise<string> {
  const result = await target.commands.run(script, { user: 'root' });
  return result.stdout;
}

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

/** A GET whose body is left as it came (fetch would inflate it). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    }).on('error', reject);
  });
}

/** Deterministic pseudo-random bytes, `total` of them in 1 MiB chunks, as a stream. */
function patternStream(total: number, seed: number): ReadableStream<Uint8Array> {
  let sent = 0;
  let state = seed;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const size = Math.min(1024 * 1024, total - sent);
      const chunk = new Uint8Array(size);
      for (let index = 0; index < size; index += 4) {
        state = (state * 1664525 + 1013904223) >>> 0;
        chunk[index] = state & 0xff;
        if (index + 1 < size) chunk[index + 1] = (state >>> 8) & 0xff;
        if (index + 2 < size) chunk[index + 2] = (state >>> 16) & 0xff;
        if (index + 3 < size) chunk[index + 3] = state >>> 24;
      }
      sent += size;
      controller.enqueue(chunk);
    },
  });
}

/** The SHA-256 and length of a stream, read chunk by chunk. */
async function digest(stream: ReadableStream<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Collects a watch's events, so that a test can wait for the ones it expects. */
class Events {
  readonly seen: FilesystemEvent[] = [];
  #waiters: Array<() => void> = [];
  readonly onEvent = (event: FilesystemEvent) => {
    this.seen.push(event);
    for (const waiter of this.#waiters.splice(0)) waiter();
  };
  async until(check: (events: FilesystemEvent[]) => boolean, what: string): Promise<FilesystemEvent[]> {
    for (let round = 0; round < 200 && !check(this.seen); round++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (!check(this.seen)) throw new Error(`never saw ${what}; saw ${JSON.stringify(this.seen.map(({ name, type }) => ({ name, type })))}`);
    return this.seen;
  }
}

const has = (events: FilesystemEvent[], name: string, type: FilesystemEventType) =>
  events.some((event) => event.name === name && event.type === type);

describe.skipIf(!baseBuilt)(`e2b SDK files against the emulator${needsBase}`, () => {
  describe('read and write', () => {
    it('writes and reads text, bytes, blobs and streams', async () => {
      const info = await sandbox.files.write('/tmp/rw/text.txt', 'héllo\nwörld\n');
      expect(info).toMatchObject({ name: 'text.txt', path: '/tmp/rw/text.txt', type: FileType.FILE });
      expect(await sandbox.files.read('/tmp/rw/text.txt')).toBe('héllo\nwörld\n');

      const bytes = Uint8Array.from({ length: 256 }, (_, index) => index);
      await sandbox.files.write('/tmp/rw/bytes.bin', bytes.buffer);
      expect(await sandbox.files.read('/tmp/rw/bytes.bin', { format: 'bytes' })).toEqual(bytes);
      const blob = await sandbox.files.read('/tmp/rw/bytes.bin', { format: 'blob' });
      expect(new Uint8Array(await blob.arrayBuffer())).toEqual(bytes);

      await sandbox.files.write('/tmp/rw/blob.txt', new Blob(['from a blob']));
      expect(await sandbox.files.read('/tmp/rw/blob.txt')).toBe('from a blob');

      // A ReadableStream goes as application/octet-stream, streamed.
      await sandbox.files.write('/tmp/rw/stream.bin', patternStream(3 * 1024 * 1024 + 5, 7));
      const read = await sandbox.files.read('/tmp/rw/stream.bin', { format: 'stream' });
      expect(await digest(read)).toEqual(await digest(patternStream(3 * 1024 * 1024 + 5, 7)));
      expect((await sh('sha256sum /tmp/rw/stream.bin')).split(' ')[0]).toBe((await digest(patternStream(3 * 1024 * 1024 + 5, 7))).sha256);
    });

    it('reads and writes empty files', async () => {
      await sandbox.files.write('/tmp/rw/empty', '');
      expect(await sandbox.files.read('/tmp/rw/empty')).toBe('');
      expect(await sandbox.files.read('/tmp/rw/empty', { format: 'bytes' })).toEqual(new Uint8Array());
      expect((await sandbox.files.getInfo('/tmp/rw/empty')).size).toBe(0);
    });

    it('round-trips 64 MiB streamed both ways', async () => {
      const size = 64 * 1024 * 1024;
      const expected = await digest(patternStream(size, 64));
      await sandbox.files.write('/tmp/big.bin', patternStream(size, 64));
      expect((await sh('sha256sum /tmp/big.bin')).split(' ')[0]).toBe(expected.sha256);
      expect((await sandbox.files.getInfo('/tmp/big.bin')).size).toBe(size);
      const read = await sandbox.files.read('/tmp/big.bin', { format: 'stream' });
      expect(await digest(read)).toEqual(expected);
      await sandbox.files.remove('/tmp/big.bin');
    }, 180_000);

    it('uploads gzip-compressed bodies and downloads gzip-encoded answers', async () => {
      const text = 'compress me '.repeat(10_000);
      await sandbox.files.write('/tmp/gz/one.txt', text, { gzip: true });
      expect(await sh('wc -c < /tmp/gz/one.txt')).toBe(`${text.length}\n`);
      await sandbox.files.write('/tmp/gz/stream.bin', patternStream(2 * 1024 * 1024, 3), { gzip: true });
      expect((await sh('sha256sum /tmp/gz/stream.bin')).split(' ')[0]).toBe((await digest(patternStream(2 * 1024 * 1024, 3))).sha256);
      expect(await sandbox.files.read('/tmp/gz/one.txt', { gzip: true })).toBe(text);

      // What goes over the wire: gzip when the client takes it (fetch inflates it), else the bytes and their length.
      const url = await sandbox.downloadUrl('/tmp/gz/one.txt', { user: 'user' });
      const raw = await rawGet(url, { 'accept-encoding': 'gzip' });
      expect(raw.headers['content-encoding']).toBe('gzip');
      expect(gunzipSync(raw.body).toString()).toBe(text);
      const gzipped = await fetch(url, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(gzipped.headers.get('content-encoding')).toBe('gzip');
      expect(await gzipped.text()).toBe(text);
      const identity = await fetch(url, { headers: { 'Accept-Encoding': 'identity' } });
      expect(identity.headers.get('content-encoding')).toBeNull();
      expect(identity.headers.get('content-length')).toBe(String(text.length));
      expect(await identity.text()).toBe(text);
    });

    it('writes several files in one multipart upload, relative paths in the home of the user', async () => {
      const written = await sandbox.files.write([
        { path: 'multi/a.txt', data: 'a' },
        { path: '/tmp/multi/b.bin', data: new Uint8Array([1, 2, 3]).buffer },
        { path: '~/multi/c.txt', data: new Blob(['c']) },
      ]);
      expect(written.map((entry) => entry.path)).toEqual(['/home/user/multi/a.txt', '/tmp/multi/b.bin', '/home/user/multi/c.txt']);
      expect(await sandbox.files.read('/home/user/multi/a.txt')).toBe('a');
      expect(await sandbox.files.read('multi/c.txt')).toBe('c');
      expect(await sandbox.files.read('/tmp/multi/b.bin', { format: 'bytes' })).toEqual(new Uint8Array([1, 2, 3]));
      // As root, a relative path is in /root.
      expect((await sandbox.files.write('rooted.txt', 'r', { user: 'root' })).path).toBe('/root/rooted.txt');
      expect(await sh('cat /root/rooted.txt')).toBe('r');
    });

    it('overwrites files and makes missing parents', async () => {
      await sandbox.files.write('/tmp/over/deep/er/file.txt', 'first version, longer');
      await sandbox.files.write('/tmp/over/deep/er/file.txt', 'second');
      expect(await sandbox.files.read('/tmp/over/deep/er/file.txt')).toBe('second');
    });
  });

  describe('metadata', () => {
    it('describes files, directories and symlinks as envd does', async () => {
      await sh(
        'mkdir -p /tmp/meta/dir && printf 12345 > /tmp/meta/file && chmod 640 /tmp/meta/file && ln -s file /tmp/meta/link && ln -s /nowhere /tmp/meta/dangling && ln -s dir /tmp/meta/dirlink && touch -d @1700000000.5 /tmp/meta/file',
      );
      const file = await sandbox.files.getInfo('/tmp/meta/file');
      expect(file).toMatchObject({
        name: 'file',
        type: FileType.FILE,
        path: '/tmp/meta/file',
        size: 5,
        mode: 0o640,
        permissions: '-rw-r-----',
        owner: 'root',
        group: 'root',
        symlinkTarget: undefined,
      });
      expect(file.modifiedTime).toEqual(new Date(1_700_000_000_500));

      const directory = await sandbox.files.getInfo('/tmp/meta/dir');
      expect(directory).toMatchObject({ name: 'dir', type: FileType.DIR, mode: 0o755, permissions: 'drwxr-xr-x' });

      // A symlink: the type and mode of its target, the resolved target, its own permission string.
      const link = await sandbox.files.getInfo('/tmp/meta/link');
      expect(link).toMatchObject({
        name: 'link',
        type: FileType.FILE,
        mode: 0o640,
        permissions: 'Lrwxrwxrwx',
        symlinkTarget: '/tmp/meta/file',
        size: 4,
      });
      expect(await sandbox.files.getInfo('/tmp/meta/dirlink')).toMatchObject({ type: FileType.DIR, symlinkTarget: '/tmp/meta/dir' });
      const dangling = await sandbox.files.getInfo('/tmp/meta/dangling');
      expect(dangling).toMatchObject({ type: undefined, symlinkTarget: '/tmp/meta/dangling', permissions: 'Lrwxrwxrwx' });
    });

    it('keeps upload metadata as extended attributes, replaced by the next upload', async () => {
      const written = await sandbox.files.write('/tmp/meta/tagged.txt', 'tagged', { metadata: { Purpose: 'test', 'build-id': '42' } });
      expect(written.metadata).toEqual({ purpose: 'test', 'build-id': '42' });
      expect((await sandbox.files.getInfo('/tmp/meta/tagged.txt')).metadata).toEqual({ purpose: 'test', 'build-id': '42' });
      expect((await sandbox.files.list('/tmp/meta')).find((entry) => entry.name === 'tagged.txt')?.metadata).toEqual({
        purpose: 'test',
        'build-id': '42',
      });
      const streamed = await sandbox.files.write('/tmp/meta/streamed.bin', patternStream(1000, 2), { metadata: { via: 'stream' } });
      expect(streamed.metadata).toEqual({ via: 'stream' });
      expect(await sh("python3 -c \"import os; print(os.getxattr('/tmp/meta/tagged.txt', 'user.e2b.purpose').decode())\"")).toBe('test\n');
      await sandbox.files.write('/tmp/meta/tagged.txt', 'again');
      expect((await sandbox.files.getInfo('/tmp/meta/tagged.txt')).metadata).toBeUndefined();
      expect((await sandbox.files.getInfo('/tmp/meta/file')).metadata).toBeUndefined();
    });

    it('lists directories to a depth, in envd order, leaving out what has no type', async () => {
      await sh(
        'mkdir -p /tmp/tree/b/deeper/deepest /tmp/tree/a && touch /tmp/tree/z.txt /tmp/tree/b/x.txt /tmp/tree/b/deeper/y.txt && mkfifo /tmp/tree/pipe',
      );
      const one = await sandbox.files.list('/tmp/tree');
      expect(one.map((entry) => entry.name)).toEqual(['a', 'b', 'z.txt']);
      expect(one.map((entry) => entry.type)).toEqual([FileType.DIR, FileType.DIR, FileType.FILE]);
      const two = await sandbox.files.list('/tmp/tree', { depth: 2 });
      expect(two.map((entry) => entry.path)).toEqual([
        '/tmp/tree/a',
        '/tmp/tree/b',
        '/tmp/tree/b/deeper',
        '/tmp/tree/b/x.txt',
        '/tmp/tree/z.txt',
      ]);
      const three = await sandbox.files.list('/tmp/tree', { depth: 3 });
      expect(three.map((entry) => entry.path)).toContain('/tmp/tree/b/deeper/deepest');
      expect(three.map((entry) => entry.path)).toContain('/tmp/tree/b/deeper/y.txt');
      const sample: EntryInfo = three.find((entry) => entry.name === 'x.txt')!;
      expect(sample).toMatchObject({ size: 0, mode: 0o644, permissions: '-rw-r--r--', owner: 'root' });
      expect(sample.modifiedTime).toBeInstanceOf(Date);
      await expect(sandbox.files.list('/tmp/tree', { depth: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it('lists through a symlinked directory under the path as given', async () => {
      await sh('mkdir -p /tmp/real && touch /tmp/real/inside && ln -sfn /tmp/real /tmp/via');
      expect((await sandbox.files.list('/tmp/via')).map((entry) => entry.path)).toEqual(['/tmp/via/inside']);
    });
  });

  describe('directories, moves and removal', () => {
    it('makes directories with parents, once', async () => {
      expect(await sandbox.files.makeDir('/tmp/made/a/b')).toBe(true);
      expect(await sandbox.files.makeDir('/tmp/made/a/b')).toBe(false);
      expect((await sandbox.files.getInfo('/tmp/made/a')).type).toBe(FileType.DIR);
      await sandbox.files.write('/tmp/made/file', 'x');
      expect(await failure(sandbox.files.makeDir('/tmp/made/file'))).toBeInstanceOf(InvalidArgumentError);
    });

    it('renames files and directories, making the destination parents', async () => {
      await sandbox.files.write('/tmp/mv/src.txt', 'moving');
      const moved = await sandbox.files.rename('/tmp/mv/src.txt', '/tmp/mv/new/dir/dst.txt');
      expect(moved).toMatchObject({ name: 'dst.txt', path: '/tmp/mv/new/dir/dst.txt', type: FileType.FILE, size: 6 });
      expect(await sandbox.files.exists('/tmp/mv/src.txt')).toBe(false);
      expect(await sandbox.files.read('/tmp/mv/new/dir/dst.txt')).toBe('moving');
      expect((await sandbox.files.rename('/tmp/mv/new', '/tmp/mv/renamed')).type).toBe(FileType.DIR);
      expect(await failure(sandbox.files.rename('/tmp/mv/missing', '/tmp/mv/x'))).toBeInstanceOf(FileNotFoundError);
    });

    it('removes files and whole trees, and a missing path quietly', async () => {
      await sandbox.files.write('/tmp/rm/a/b/c.txt', 'c');
      expect(await sandbox.files.exists('/tmp/rm/a/b/c.txt')).toBe(true);
      await sandbox.files.remove('/tmp/rm/a/b/c.txt');
      expect(await sandbox.files.exists('/tmp/rm/a/b/c.txt')).toBe(false);
      await sandbox.files.remove('/tmp/rm');
      expect(await sandbox.files.exists('/tmp/rm')).toBe(false);
      await expect(sandbox.files.remove('/tmp/never-there')).resolves.toBeUndefined();
    });
  });

  describe('errors', () => {
    it('reports missing paths as FileNotFoundError and exists as false', async () => {
      expect(await failure(sandbox.files.read('/tmp/no/such/file'))).toBeInstanceOf(FileNotFoundError);
      expect(await failure(sandbox.files.read('/tmp/no/such/file', { format: 'stream' }))).toBeInstanceOf(FileNotFoundError);
      expect(await failure(sandbox.files.getInfo('/tmp/no-such'))).toBeInstanceOf(FileNotFoundError);
      expect(await failure(sandbox.files.list('/tmp/no-such'))).toBeInstanceOf(FileNotFoundError);
      expect(await sandbox.files.exists('/tmp/no-such')).toBe(false);
    });

    it('refuses reading a directory, listing a file and writing over a directory', async () => {
      await sandbox.files.makeDir('/tmp/errs/dir');
      await sandbox.files.write('/tmp/errs/file', 'f');
      const read = await failure(sandbox.files.read('/tmp/errs/dir'));
      expect(read).toBeInstanceOf(InvalidArgumentError);
      expect(read.message).toContain("path '/tmp/errs/dir' is a directory");
      expect(await failure(sandbox.files.list('/tmp/errs/file'))).toBeInstanceOf(InvalidArgumentError);
      expect(await failure(sandbox.files.write('/tmp/errs/dir', 'x'))).toBeInstanceOf(InvalidArgumentError);
      expect(await failure(sandbox.files.write('/tmp/errs/dir', patternStream(10, 1)))).toBeInstanceOf(InvalidArgumentError);
      // A body larger than what the write takes in before it fails: refused all the same, and the
      // connection stays usable for the next call.
      expect(await failure(sandbox.files.write('/tmp/errs/dir', patternStream(4 * 1024 * 1024, 64 * 1024)))).toBeInstanceOf(
        InvalidArgumentError,
      );
      expect(await sandbox.files.read('/tmp/errs/file')).toBe('f');
    });

    it('refuses an unknown user', async () => {
      expect(await failure(sandbox.files.read('/tmp/errs/file', { user: 'nobody-here' }))).toBeInstanceOf(AuthenticationError);
      expect(await failure(sandbox.files.getInfo('/tmp/errs/file', { user: 'nobody-here' }))).toBeInstanceOf(AuthenticationError);
      expect(await failure(sandbox.files.write('/tmp/errs/u', 'x', { user: 'nobody-here' }))).toBeInstanceOf(AuthenticationError);
    });
  });

  describe('watching', () => {
    it('streams create, write, chmod, rename and remove events named relative to the directory', async () => {
      await sandbox.files.makeDir('/tmp/watched');
      const events = new Events();
      const handle = await sandbox.files.watchDir('/tmp/watched', events.onEvent);
      try {
        await sh('printf data > /tmp/watched/new.txt');
        await events.until(
          (seen) => has(seen, 'new.txt', FilesystemEventType.CREATE) && has(seen, 'new.txt', FilesystemEventType.WRITE),
          'create and write',
        );
        await sh('chmod 600 /tmp/watched/new.txt');
        await events.until((seen) => has(seen, 'new.txt', FilesystemEventType.CHMOD), 'chmod');
        await sh('mv /tmp/watched/new.txt /tmp/watched/renamed.txt');
        await events.until(
          (seen) => has(seen, 'new.txt', FilesystemEventType.RENAME) && has(seen, 'renamed.txt', FilesystemEventType.CREATE),
          'rename then create',
        );
        await sh('rm /tmp/watched/renamed.txt');
        await events.until((seen) => has(seen, 'renamed.txt', FilesystemEventType.REMOVE), 'remove');
        expect(events.seen.every((event) => event.entry === undefined)).toBe(true);
      } finally {
        await handle.stop();
      }
    });

    it('watches recursively, with entries when asked', async () => {
      await sh('mkdir -p /tmp/rwatch/sub');
      const events = new Events();
      const handle = await sandbox.files.watchDir('/tmp/rwatch', events.onEvent, { recursive: true, includeEntry: true });
      try {
        await sh('printf 123 > /tmp/rwatch/sub/deep.txt');
        const seen = await events.until((all) => has(all, 'sub/deep.txt', FilesystemEventType.WRITE), 'a write below');
        const created = seen.find((event) => event.name === 'sub/deep.txt' && event.type === FilesystemEventType.CREATE);
        expect(created?.entry).toMatchObject({ name: 'deep.txt', path: '/tmp/rwatch/sub/deep.txt', type: FileType.FILE });
        const written = seen.filter((event) => event.name === 'sub/deep.txt' && event.type === FilesystemEventType.WRITE).at(-1);
        expect(written?.entry?.path).toBe('/tmp/rwatch/sub/deep.txt');
        await sh('rm /tmp/rwatch/sub/deep.txt');
        const removed = (await events.until((all) => has(all, 'sub/deep.txt', FilesystemEventType.REMOVE), 'remove below')).find(
          (event) => event.type === FilesystemEventType.REMOVE,
        );
        expect(removed?.entry).toBeUndefined();
      } finally {
        await handle.stop();
      }
    });

    it('does not report changes below a subdirectory unless recursive', async () => {
      await sh('mkdir -p /tmp/flat/sub');
      const events = new Events();
      const handle = await sandbox.files.watchDir('/tmp/flat', events.onEvent);
      try {
        await sh('touch /tmp/flat/sub/hidden.txt && touch /tmp/flat/visible.txt');
        await events.until((seen) => has(seen, 'visible.txt', FilesystemEventType.CREATE), 'the top-level create');
        expect(events.seen.some((event) => event.name.includes('hidden'))).toBe(false);
      } finally {
        await handle.stop();
      }
    });

    it('refuses to watch a missing path or a file', async () => {
      expect(await failure(sandbox.files.watchDir('/tmp/not-there', () => undefined))).toBeInstanceOf(FileNotFoundError);
      await sandbox.files.write('/tmp/watch-file', 'x');
      expect(await failure(sandbox.files.watchDir('/tmp/watch-file', () => undefined))).toBeInstanceOf(InvalidArgumentError);
    });

    it('serves the polling watcher (CreateWatcher, GetWatcherEvents, RemoveWatcher) over Connect JSON', async () => {
      await sandbox.files.makeDir('/tmp/polled');
      const call = async (method: string, body: unknown) => {
        const response = await fetch(`${emulator.sandboxUrl}/filesystem.Filesystem/${method}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'connect-protocol-version': '1',
            'e2b-sandbox-id': sandbox.sandboxId,
            'x-access-token': (sandbox as unknown as { envdAccessToken: string }).envdAccessToken,
          },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: (await response.json()) as Record<string, any> };
      };
      const created = await call('CreateWatcher', { path: '/tmp/polled', includeEntry: true });
      expect(created.status).toBe(200);
      const watcherId = created.body.watcherId as string;
      expect(watcherId).toMatch(/^w/);
      await sh('printf x > /tmp/polled/p.txt');
      let events: Array<Record<string, any>> = [];
      for (let round = 0; round < 100 && !events.some((event) => event.type === 'EVENT_TYPE_WRITE'); round++) {
        const fetched = await call('GetWatcherEvents', { watcherId });
        expect(fetched.status).toBe(200);
        events = [...events, ...((fetched.body.events as Array<Record<string, any>>) ?? [])];
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(events[0]).toMatchObject({ name: 'p.txt', type: 'EVENT_TYPE_CREATE', entry: { name: 'p.txt', type: 'FILE_TYPE_FILE' } });
      expect(events.some((event) => event.type === 'EVENT_TYPE_WRITE')).toBe(true);
      expect((await call('RemoveWatcher', { watcherId })).status).toBe(200);
      const gone = await call('GetWatcherEvents', { watcherId });
      expect(gone).toMatchObject({ status: 404, body: { code: 'not_found' } });
    });
  });

  describe('signed URLs', () => {
    it('uploads and downloads through signed URLs with a plain fetch', async () => {
      const uploadUrl = await sandbox.uploadUrl('/tmp/signed/up.txt');
      expect(new URL(uploadUrl).searchParams.get('signature')).toMatch(/^v1_/);
      const form = new FormData();
      form.append('file', new Blob(['signed upload']), 'up.txt');
      const uploaded = await fetch(uploadUrl, { method: 'POST', body: form });
      expect(uploaded.status).toBe(200);
      expect(await uploaded.json()).toEqual([{ name: 'up.txt', path: '/tmp/signed/up.txt', type: 'file' }]);

      const downloadUrl = await sandbox.downloadUrl('/tmp/signed/up.txt');
      const downloaded = await fetch(downloadUrl);
      expect(downloaded.status).toBe(200);
      expect(await downloaded.text()).toBe('signed upload');

      // Octet-stream works too, and a signature with an expiry in the future.
      const expiring = await sandbox.uploadUrl('/tmp/signed/raw.bin', { useSignatureExpiration: 600 });
      expect(new URL(expiring).searchParams.get('signature_expiration')).toMatch(/^\d+$/);
      const raw = await fetch(expiring, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array([9, 8, 7]),
      });
      expect(raw.status).toBe(200);
      expect(await sandbox.files.read('/tmp/signed/raw.bin', { format: 'bytes' })).toEqual(new Uint8Array([9, 8, 7]));
    });

    it('refuses a tampered, expired, missing or misused signature', async () => {
      await sandbox.files.write('/tmp/signed/secret.txt', 'secret');
      const url = new URL(await sandbox.downloadUrl('/tmp/signed/secret.txt'));
      const tampered = new URL(url);
      tampered.searchParams.set('signature', `${url.searchParams.get('signature')!.slice(0, -2)}xx`);
      expect((await fetch(tampered)).status).toBe(401);
      const otherPath = new URL(url);
      otherPath.searchParams.set('path', '/etc/passwd');
      expect((await fetch(otherPath)).status).toBe(401);
      // A read signature does not write.
      const asUpload = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'overwrite' });
      expect(asUpload.status).toBe(401);
      const expired = await fetch(await sandbox.downloadUrl('/tmp/signed/secret.txt', { useSignatureExpiration: -10 }));
      expect(expired.status).toBe(401);
      expect(((await expired.json()) as { message: string }).message).toContain('expired');
      // Without a signature, the sandbox named by its header still wants its token.
      const unsigned = new URL(url);
      unsigned.searchParams.delete('signature');
      const refused = await fetch(unsigned, { headers: { 'e2b-sandbox-id': sandbox.sandboxId } });
      expect(refused.status).toBe(401);
      expect(await sandbox.files.read('/tmp/signed/secret.txt')).toBe('secret');
    });
  });

  describe('health', () => {
    it('answers as a live sandbox, and as a dead one once it was killed', async () => {
      const doomed = await create();
      expect(await doomed.isRunning()).toBe(true);
      const health = await fetch(`${emulator.sandboxUrl}/health`, { headers: { 'e2b-sandbox-id': doomed.sandboxId } });
      expect(health.status).toBe(204);
      await doomed.files.write('/tmp/last.txt', 'last');
      await doomed.kill();
      expect(await doomed.isRunning()).toBe(false);
      const dead = await fetch(`${emulator.sandboxUrl}/health`, { headers: { 'e2b-sandbox-id': doomed.sandboxId } });
      expect(dead.status).toBe(502);
      expect(await dead.json()).toMatchObject({ code: 502, sandboxId: doomed.sandboxId });
      // The SDK reads a gone sandbox's 502 (HTTP) and unavailable (Connect) as its timeout.
      expect(await failure(doomed.files.read('/tmp/last.txt'))).toBeInstanceOf(TimeoutError);
      expect(await failure(doomed.files.getInfo('/tmp/last.txt'))).toBeInstanceOf(TimeoutError);
    });

    it('answers as a dead sandbox once it timed out', async () => {
      const brief = await Sandbox.create('base', { ...options, timeoutMs: 2000 });
      sandboxes.push(brief);
      expect(await brief.isRunning()).toBe(true);
      let running = true;
      for (let round = 0; round < 300 && running; round++) {
        running = await brief.isRunning();
        if (running) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(running).toBe(false);
      expect(await failure(brief.files.list('/'))).toBeInstanceOf(TimeoutError);
    });

    it.skipIf(!canPause)(`answers as a dead sandbox while it is paused, and as a live one once resumed${needsPause}`, async () => {
      const paused = await create();
      await paused.files.write('/tmp/kept.txt', 'kept');
      expect(await paused.pause()).toBe(true);
      expect(await paused.isRunning()).toBe(false);
      expect(await failure(paused.files.read('/tmp/kept.txt'))).toBeInstanceOf(TimeoutError);
      const resumed = await Sandbox.connect(paused.sandboxId, options);
      expect(await resumed.isRunning()).toBe(true);
      expect(await resumed.files.read('/tmp/kept.txt')).toBe('kept');
    });

    it('ends a watch when its sandbox is killed', async () => {
      const doomed = await create();
      await doomed.files.makeDir('/tmp/w');
      let exit: Error | undefined;
      let markExited!: () => void;
      const exited = new Promise<void>((resolve) => (markExited = resolve));
      await doomed.files.watchDir('/tmp/w', () => undefined, {
        onExit: (error) => {
          exit = error;
          markExited();
        },
      });
      await doomed.kill();
      await exited;
      // The connection drops with the sandbox; the SDK asks /health, hears 502 and calls it a timeout.
      expect(exit).toBeInstanceOf(TimeoutError);
    });
  });

  describe('memory', () => {
    /** The emulator process's peak resident memory so far, in bytes (Linux's VmHWM). */
    const peakBytes = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

    it('holds neither an upload nor a download whole in memory', async () => {
      const child = await spawnE2bEmulator();
      try {
        const remote = await Sandbox.create('base', {
          apiUrl: child.url,
          sandboxUrl: child.sandboxUrl,
          domain: child.domain,
          apiKey: 'e2b_emulator',
        });
        await remote.files.write('/tmp/warm-up', 'x');
        await remote.files.read('/tmp/warm-up');
        const before = peakBytes(child.pid);
        const size = 128 * 1024 * 1024;
        await remote.files.write('/tmp/huge.bin', patternStream(size, 5));
        await remote.files.write('/tmp/huge.gz.bin', patternStream(size, 5), { gzip: true });
        expect(await digest(await remote.files.read('/tmp/huge.bin', { format: 'stream' }))).toEqual(await digest(patternStream(size, 5)));
        // Buffering either file whole would raise the peak by at least its size.
        expect(peakBytes(child.pid) - before).toBeLessThan(size * 0.75);
        await remote.kill();
      } finally {
        await child.close();
      }
    }, 240_000);
  });
});
