import { createHash } from 'node:crypto';
import { SandboxFileNotFoundError, SandboxInvalidArgumentError } from '../errors/index.js';
import type { SuiteContext } from './context.js';

export function filesTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  describe('files', () => {
    const shared = context.sharedSandbox({ workdir: '/workspace' });

    context.test('files.text', 'text round trip, visible to commands', async () => {
      const sandbox = shared();
      await sandbox.files.write('/workspace/hello.txt', 'hello ünïcødé\nsecond line\n');
      expect(await sandbox.files.readText('/workspace/hello.txt')).toBe('hello ünïcødé\nsecond line\n');
      expect((await sandbox.run(['cat', '/workspace/hello.txt'])).stdout).toBe('hello ünïcødé\nsecond line\n');
      await sandbox.run(['/bin/sh', '-c', 'printf "from exec" > /workspace/from-exec.txt']);
      expect(await sandbox.files.readText('/workspace/from-exec.txt')).toBe('from exec');
    });

    context.test('files.binary', 'binary round trip of every byte value', async () => {
      const sandbox = shared();
      const bytes = new Uint8Array(256 * 4).map((_, index) => index % 256);
      await sandbox.files.write('/workspace/binary.bin', bytes);
      expect(Buffer.from(await sandbox.files.read('/workspace/binary.bin')).equals(Buffer.from(bytes))).toBe(true);
      expect((await sandbox.run(['wc', '-c', '/workspace/binary.bin'])).stdout.trim().split(' ')[0]).toBe('1024');
    });

    context.test('files.empty-overwrite', 'an empty file and overwriting', async () => {
      const sandbox = shared();
      await sandbox.files.write('/workspace/empty', '');
      expect((await sandbox.files.read('/workspace/empty')).byteLength).toBe(0);
      await sandbox.files.write('/workspace/empty', 'now longer');
      await sandbox.files.write('/workspace/empty', 'short');
      expect(await sandbox.files.readText('/workspace/empty')).toBe('short');
    });

    const largeMiB = context.options.scale?.largeFileMiB ?? 100;
    context.test('files.large-stream', 'a large file streams in and out, byte for byte', async () => {
      const sandbox = shared();
      const chunk = new Uint8Array(1024 * 1024);
      let produced = 0;
      const inHash = createHash('sha256');
      const source = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (produced === largeMiB) return controller.close();
          chunk.fill(produced % 251);
          chunk[0] = produced & 0xff;
          const copy = chunk.slice();
          inHash.update(copy);
          produced++;
          controller.enqueue(copy);
        },
      });
      await sandbox.files.write('/workspace/large.bin', source);
      const stat = await sandbox.files.stat('/workspace/large.bin');
      expect(stat.size).toBe(largeMiB * 1024 * 1024);
      const outHash = createHash('sha256');
      let total = 0;
      for await (const piece of await sandbox.files.readStream('/workspace/large.bin')) {
        outHash.update(piece);
        total += piece.byteLength;
      }
      expect(total).toBe(largeMiB * 1024 * 1024);
      expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
      await sandbox.files.remove('/workspace/large.bin');
    });

    context.test('files.missing', 'a missing file is SandboxFileNotFoundError everywhere', async () => {
      const sandbox = shared();
      const error = await context.expectError(sandbox.files.read('/workspace/nope.txt'), SandboxFileNotFoundError);
      expect(error.path).toBe('/workspace/nope.txt');
      await context.expectError(sandbox.files.readStream('/workspace/nope.txt'), SandboxFileNotFoundError);
      await context.expectError(sandbox.files.stat('/workspace/nope.txt'), SandboxFileNotFoundError);
      await context.expectError(sandbox.files.list('/workspace/no-dir'), SandboxFileNotFoundError);
      await context.expectError(sandbox.files.remove('/workspace/nope.txt'), SandboxFileNotFoundError);
      expect(await sandbox.files.exists('/workspace/nope.txt')).toBe(false);
    });

    context.test('files.mkdir-list-stat', 'mkdir -p, list, stat, exists', async () => {
      const sandbox = shared();
      await sandbox.files.mkdir('/workspace/a/b/c');
      await sandbox.files.mkdir('/workspace/a/b/c');
      await sandbox.files.write('/workspace/a/file.txt', '12345');
      await sandbox.files.write('/workspace/a/b/deeper/auto-parent.txt', 'x');
      const entries = await sandbox.files.list('/workspace/a');
      expect(entries.map((entry) => [entry.name, entry.type])).toEqual([
        ['b', 'directory'],
        ['file.txt', 'file'],
      ]);
      const file = entries.find((entry) => entry.name === 'file.txt')!;
      expect(file.size).toBe(5);
      expect(file.path).toBe('/workspace/a/file.txt');
      const stat = await sandbox.files.stat('/workspace/a/b');
      expect(stat.type).toBe('directory');
      expect(await sandbox.files.exists('/workspace/a/b/c')).toBe(true);
      expect(await sandbox.files.exists('/workspace/a/b/deeper/auto-parent.txt')).toBe(true);
      await sandbox.files.write('/workspace/a/mode.sh', '#!/bin/sh\necho ran\n', { mode: 0o755 });
      expect((await sandbox.files.stat('/workspace/a/mode.sh')).mode & 0o777).toBe(0o755);
      expect((await sandbox.run(['/workspace/a/mode.sh'])).stdout).toBe('ran\n');
    });

    // The contract (SandboxFiles) takes absolute paths only: a relative one is refused, never
    // resolved against some directory the caller did not name.
    context.test('files.relative', 'a relative path is SandboxInvalidArgumentError(path), and nothing is written', async () => {
      const sandbox = shared();
      const error = await context.expectError(sandbox.files.write('relative.txt', 'rel'), SandboxInvalidArgumentError);
      expect(error.argument).toBe('path');
      expect(await sandbox.files.exists('/workspace/relative.txt')).toBe(false);
    });

    context.test('files.remove', 'remove a file, and a directory only with recursive', async () => {
      const sandbox = shared();
      await sandbox.files.write('/workspace/rm/inner/file', 'x');
      await sandbox.files.remove('/workspace/rm/inner/file');
      expect(await sandbox.files.exists('/workspace/rm/inner/file')).toBe(false);
      await sandbox.files.write('/workspace/rm/inner/again', 'x');
      await expect(sandbox.files.remove('/workspace/rm')).rejects.toBeDefined();
      await sandbox.files.remove('/workspace/rm', { recursive: true });
      expect(await sandbox.files.exists('/workspace/rm')).toBe(false);
    });

    context.test('files.symlinks', 'symlinks resolve inside the sandbox', async () => {
      const sandbox = shared();
      await sandbox.files.write('/workspace/target.txt', 'inside');
      await sandbox.run(['ln', '-sf', '/workspace/target.txt', '/workspace/link']);
      expect(await sandbox.files.readText('/workspace/link')).toBe('inside');
      const stat = await sandbox.files.stat('/workspace/link');
      expect(stat.type).toBe('symlink');
      expect(stat.linkTarget).toBe('/workspace/target.txt');
    });

    context.test('files.bad-paths', 'bad paths are typed errors', async () => {
      const sandbox = shared();
      await context.expectError(sandbox.files.read('/workspace/nul\0byte'), SandboxInvalidArgumentError);
      await context.expectError(sandbox.files.write('', 'x'), SandboxInvalidArgumentError);
      await sandbox.files.mkdir('/workspace/a-directory');
      await context.expectError(sandbox.files.read('/workspace/a-directory'), SandboxInvalidArgumentError);
    });
  });
}
