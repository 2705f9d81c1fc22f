/**
 * The Vercel emulator's file API as a user of the real `@vercel/sandbox` SDK sees it:
 * `writeFiles` (a gzipped tar: relative paths under /vercel/sandbox, absolute ones as given,
 * parents made, modes kept, binary content), `readFile` / `readFileToBuffer` (null for a
 * missing file), `downloadFile`, `mkDir`, and what the SDK's `fs` helpers build on them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from '@vercel/sandbox';
import { apiError, errorCode, needsImage, startTestEmulator, type TestEmulator } from './vercel/vercel-test-kit.js';

let kit: TestEmulator;
let sandbox: Sandbox;

async function text(stream: NodeJS.ReadableStream | null): Promise<string | null> {
  if (stream === null) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

describe.skipIf(needsImage !== '')(`Vercel emulator: files through @vercel/sandbox${needsImage}`, () => {
  beforeAll(async () => {
    kit = await startTestEmulator();
    sandbox = await kit.create();
  });
  afterAll(async () => {
    await kit?.close();
  });

  it('writes files relative to /vercel/sandbox and at absolute paths, parents made', async () => {
    await sandbox.writeFiles([
      { path: 'notes/today.txt', content: Buffer.from('relative') },
      { path: '/tmp/deep/down/abs.txt', content: 'absolute' },
    ]);
    expect(await (await sandbox.runCommand('cat', ['/vercel/sandbox/notes/today.txt', '/tmp/deep/down/abs.txt'])).stdout()).toBe(
      'relativeabsolute',
    );
  });

  it('keeps the mode given, so a written script runs', async () => {
    await sandbox.writeFiles([{ path: '/usr/local/bin/hello', content: '#!/bin/sh\necho hello from script\n', mode: 0o755 }]);
    const result = await sandbox.runCommand('hello');
    expect(await result.stdout()).toBe('hello from script\n');
    expect(await (await sandbox.runCommand('stat', ['-c', '%a', '/usr/local/bin/hello'])).stdout()).toBe('755\n');
  });

  it('overwrites a file whole', async () => {
    await sandbox.writeFiles([{ path: 'over.txt', content: 'a much longer first version' }]);
    await sandbox.writeFiles([{ path: 'over.txt', content: 'short' }]);
    expect((await sandbox.readFileToBuffer({ path: 'over.txt' }))?.toString()).toBe('short');
  });

  it('writes binary bytes unchanged, and appends through the fs helpers', async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let index = 0; index < bytes.length; index++) bytes[index] = (index * 31) % 256;
    await sandbox.writeFiles([{ path: 'blob.bin', content: bytes }]);
    const back = await sandbox.readFileToBuffer({ path: 'blob.bin' });
    expect(back?.equals(bytes)).toBe(true);
    await sandbox.fs.writeFile('streamed.txt', 'part one, ');
    await sandbox.fs.appendFile('streamed.txt', 'part two');
    expect(await sandbox.fs.readFile('streamed.txt', 'utf8')).toBe('part one, part two');
  });

  it('reads a file as a stream, relative to cwd when given', async () => {
    await sandbox.writeFiles([{ path: '/srv/data/one.txt', content: 'in srv' }]);
    expect(await text(await sandbox.readFile({ path: 'one.txt', cwd: '/srv/data' }))).toBe('in srv');
    expect(await text(await sandbox.readFile({ path: '/srv/data/one.txt' }))).toBe('in srv');
  });

  it('answers null for a missing file, and a 400 for a directory', async () => {
    expect(await sandbox.readFile({ path: 'does/not/exist.txt' })).toBeNull();
    expect(await sandbox.readFileToBuffer({ path: '/nope' })).toBeNull();
    const error = await apiError(sandbox.readFile({ path: '/tmp' }));
    expect(error.response.status).toBe(400);
    expect(errorCode(error)).toBe('is_a_directory');
  });

  it('downloads a file to the host, null when missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vercel-download-'));
    try {
      await sandbox.writeFiles([{ path: 'download.txt', content: 'to the host' }]);
      const written = await sandbox.downloadFile(
        { path: 'download.txt' },
        { path: join(dir, 'nested', 'copy.txt') },
        { mkdirRecursive: true },
      );
      expect(written).toBe(join(dir, 'nested', 'copy.txt'));
      expect(await readFile(written!, 'utf8')).toBe('to the host');
      expect(await sandbox.downloadFile({ path: 'absent.txt' }, { path: join(dir, 'absent.txt') })).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('makes directories with their parents; an existing directory is fine, a file in the way is not', async () => {
    await sandbox.mkDir('a/b/c');
    await sandbox.mkDir('a/b/c');
    expect((await sandbox.runCommand('test', ['-d', '/vercel/sandbox/a/b/c'])).exitCode).toBe(0);
    await sandbox.writeFiles([{ path: 'plain.txt', content: 'x' }]);
    const error = await apiError(sandbox.mkDir('plain.txt/below'));
    expect(error.response.status).toBe(400);
  });

  it('refuses a write below a file with a 400 that says why', async () => {
    await sandbox.writeFiles([{ path: 'file-not-dir', content: 'x' }]);
    const error = await apiError(sandbox.writeFiles([{ path: 'file-not-dir/child.txt', content: 'y' }]));
    expect(error.response.status).toBe(400);
    expect(errorCode(error)).toBe('file_write_failed');
  });

  it('serves the SDK fs helpers built on commands and these calls', async () => {
    await sandbox.fs.mkdir('fsdir/inner', { recursive: true });
    await sandbox.fs.writeFile('fsdir/inner/f.txt', 'fs helper');
    expect(await sandbox.fs.exists('fsdir/inner/f.txt')).toBe(true);
    expect(await sandbox.fs.readdir('fsdir/inner')).toEqual(['f.txt']);
    expect((await sandbox.fs.stat('fsdir/inner/f.txt')).size).toBe(9);
    await sandbox.fs.rm('fsdir', { recursive: true });
    expect(await sandbox.fs.exists('fsdir')).toBe(false);
  });
});
