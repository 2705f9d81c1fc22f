/**
 * The emulator's daemon file system API as a user of the real `@daytonaio/sdk` sees it, through
 * `sandbox.fs` as Daytona's docs show it: upload and download (buffers, local files, streams,
 * several at once, a missing file's error), list (with depth), info, folder with a mode, move,
 * delete (recursive or not), find (content), search (names), replace, and permissions.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Daytona, DaytonaError, DaytonaFileNotFoundError, DaytonaNotFoundError, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaytonaEmulator, type DaytonaEmulator } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

let emulator: DaytonaEmulator;
let daytona: Daytona;
let sandbox: Sandbox;
let scratch: string;

beforeAll(async () => {
  if (!imageBuilt) return;
  scratch = await mkdtemp(join(tmpdir(), 'daytona-sdk-files-'));
  emulator = await startDaytonaEmulator();
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: emulator.apiKey, target: 'us' });
  sandbox = await daytona.create();
}, 120_000);

afterAll(async () => {
  await sandbox?.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

describe.skipIf(!imageBuilt)(`Daytona emulator: files through the SDK${needsImage}`, () => {
  it('uploads a buffer and downloads it byte for byte, binary and unicode names included', async () => {
    const bytes = new Uint8Array(70_000).map((_, index) => (index * 31) % 256);
    await sandbox.fs.uploadFile(Buffer.from(bytes), '/tmp/dir one/blob é.bin');
    const back = await sandbox.fs.downloadFile('/tmp/dir one/blob é.bin');
    expect(Buffer.compare(back, Buffer.from(bytes))).toBe(0);
  });

  it('uploads several files at once, relative paths under the working directory', async () => {
    await sandbox.fs.uploadFiles([
      { source: Buffer.from('alpha\n'), destination: 'multi/a.txt' },
      { source: Buffer.from('beta\n'), destination: '/tmp/multi/b.txt' },
    ]);
    expect((await sandbox.process.executeCommand('cat multi/a.txt /tmp/multi/b.txt')).result).toBe('alpha\nbeta\n');
  });

  it('uploads from and downloads to local files, and streams both ways', async () => {
    const local = join(scratch, 'local.txt');
    await writeFile(local, 'from a local file\n');
    await sandbox.fs.uploadFile(local, '/tmp/from-local.txt');
    const target = join(scratch, 'nested', 'back.txt');
    await sandbox.fs.downloadFile('/tmp/from-local.txt', target);
    expect(await readFile(target, 'utf8')).toBe('from a local file\n');

    const chunks = Array.from({ length: 64 }, (_, index) => Buffer.alloc(16_384, index));
    await sandbox.fs.uploadFileStream(Readable.from(chunks), '/tmp/streamed.bin');
    const stream = await sandbox.fs.downloadFileStream('/tmp/streamed.bin');
    const received: Buffer[] = [];
    for await (const chunk of stream) received.push(chunk as Buffer);
    expect(Buffer.compare(Buffer.concat(received), Buffer.concat(chunks))).toBe(0);
  });

  it('downloading a missing file is a DaytonaFileNotFoundError; downloadFiles reports it per file', async () => {
    expect(await failure(sandbox.fs.downloadFile('/tmp/no-such-file'))).toBeInstanceOf(DaytonaFileNotFoundError);
    await sandbox.fs.uploadFile(Buffer.from('here'), '/tmp/present.txt');
    const results = await sandbox.fs.downloadFiles([{ source: '/tmp/present.txt' }, { source: '/tmp/absent.txt' }]);
    expect(results[0]!.result?.toString()).toBe('here');
    expect(results[0]!.error).toBeUndefined();
    expect(results[1]!.result).toBeUndefined();
    expect(results[1]!.error).toMatch(/not found/);
    expect(results[1]!.errorDetails?.statusCode).toBe(404);
  });

  it('createFolder with a mode, getFileDetails and listFiles (depth) describe what is there', async () => {
    await sandbox.fs.createFolder('/tmp/tree/inner', '750');
    await sandbox.fs.uploadFile(Buffer.from('12345'), '/tmp/tree/inner/five.txt');
    await sandbox.fs.uploadFile(Buffer.from('top'), '/tmp/tree/top.txt');
    const folder = await sandbox.fs.getFileDetails('/tmp/tree/inner');
    expect(folder).toMatchObject({ name: 'inner', isDir: true, permissions: '0750', mode: 'drwxr-x---' });
    const file = await sandbox.fs.getFileDetails('/tmp/tree/inner/five.txt');
    expect(file).toMatchObject({ name: 'five.txt', isDir: false, size: 5 });
    expect(Number.isNaN(Date.parse(file.modTime))).toBe(false);
    const shallow = await sandbox.fs.listFiles('/tmp/tree');
    expect(shallow.map((entry) => entry.name).sort()).toEqual(['inner', 'top.txt']);
    const deep = await sandbox.fs.listFiles('/tmp/tree', { depth: 2 });
    expect(deep.map((entry) => entry.name).sort()).toEqual(['five.txt', 'inner', 'top.txt']);
    expect(await failure(sandbox.fs.getFileDetails('/tmp/tree/missing'))).toBeInstanceOf(DaytonaNotFoundError);
  });

  it('moveFiles renames, deleteFile removes (a non-empty folder only recursively)', async () => {
    await sandbox.fs.uploadFile(Buffer.from('moving'), '/tmp/mv/src.txt');
    await sandbox.fs.moveFiles('/tmp/mv/src.txt', '/tmp/mv/dst.txt');
    expect((await sandbox.fs.downloadFile('/tmp/mv/dst.txt')).toString()).toBe('moving');
    expect(await failure(sandbox.fs.moveFiles('/tmp/mv/src.txt', '/tmp/mv/again.txt'))).toBeInstanceOf(DaytonaNotFoundError);
    expect(await failure(sandbox.fs.deleteFile('/tmp/mv'))).toBeInstanceOf(DaytonaError);
    await sandbox.fs.deleteFile('/tmp/mv/dst.txt');
    await sandbox.fs.deleteFile('/tmp/mv');
    await sandbox.fs.uploadFile(Buffer.from('x'), '/tmp/rm-tree/a/b.txt');
    await sandbox.fs.deleteFile('/tmp/rm-tree', true);
    expect((await sandbox.process.executeCommand('test -e /tmp/rm-tree || echo gone')).result).toBe('gone\n');
  });

  it('findFiles finds content, searchFiles finds names, replaceInFiles replaces in each file', async () => {
    await sandbox.fs.uploadFiles([
      { source: Buffer.from('first line\nneedle here\n'), destination: '/tmp/search/one.py' },
      { source: Buffer.from('needle again\n'), destination: '/tmp/search/sub/two.py' },
      { source: Buffer.from('nothing\n'), destination: '/tmp/search/three.txt' },
    ]);
    const matches = await sandbox.fs.findFiles('/tmp/search', 'needle');
    expect(matches.map((match) => [match.file, match.line, match.content]).sort()).toEqual([
      ['/tmp/search/one.py', 2, 'needle here'],
      ['/tmp/search/sub/two.py', 1, 'needle again'],
    ]);
    const found = await sandbox.fs.searchFiles('/tmp/search', '*.py');
    expect(found.files.sort()).toEqual(['/tmp/search/one.py', '/tmp/search/sub/two.py']);
    const results = await sandbox.fs.replaceInFiles(['/tmp/search/one.py', '/tmp/search/missing.py'], 'needle', 'pin');
    expect(results).toEqual([
      { file: '/tmp/search/one.py', success: true },
      { file: '/tmp/search/missing.py', success: false, error: expect.stringMatching(/not found/) },
    ]);
    expect((await sandbox.fs.downloadFile('/tmp/search/one.py')).toString()).toBe('first line\npin here\n');
  });

  it('setFilePermissions changes the mode', async () => {
    await sandbox.fs.uploadFile(Buffer.from('#!/bin/sh\necho ran\n'), '/tmp/script.sh');
    await sandbox.fs.setFilePermissions('/tmp/script.sh', { mode: '755' });
    expect((await sandbox.fs.getFileDetails('/tmp/script.sh')).permissions).toBe('0755');
    expect((await sandbox.process.executeCommand('/tmp/script.sh')).result).toBe('ran\n');
  });
});
