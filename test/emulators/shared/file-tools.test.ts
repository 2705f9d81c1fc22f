/**
 * The shared file tools against a real local sandbox (bubblewrap): faults come out typed, entries
 * carry owners, and writes stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider, type LocalSandbox } from '../../../adapters/local/index.js';
import { readText } from '../../../src/kit/index.js';
import { EmulatorFiles, FileToolError, classifyFileFailure, permissionDigits, permissionString, type FileFault } from './file-tools.js';

async function fault(operation: Promise<unknown>): Promise<FileFault | 'no error'> {
  try {
    await operation;
    return 'no error';
  } catch (error) {
    if (error instanceof FileToolError) return error.fault;
    throw error;
  }
}

describe('classifyFileFailure', () => {
  it('reads the kit scripts’ exit codes first, then the error text', () => {
    expect(classifyFileFailure(44, '')).toBe('not_found');
    expect(classifyFileFailure(45, '')).toBe('is_directory');
    expect(classifyFileFailure(48, '')).toBe('not_directory');
    expect(classifyFileFailure(1, "rmdir: failed to remove '/tmp': Directory not empty")).toBe('not_empty');
    expect(classifyFileFailure(1, "mkdir: cannot create directory '/tmp/x': File exists")).toBe('already_exists');
    expect(classifyFileFailure(2, 'sh: 1: cannot create /proc/version: Permission denied')).toBe('permission_denied');
    expect(classifyFileFailure(2, 'sh: 1: cannot create /v/x: Read-only file system')).toBe('permission_denied');
    expect(classifyFileFailure(1, 'something else')).toBe('failed');
  });

  it('permissionString spells the low nine bits', () => {
    expect(permissionString(0o755)).toBe('rwxr-xr-x');
    expect(permissionString(0o1640)).toBe('rw-r-----');
  });

  it('permissionDigits gives four octal digits with the set-id and sticky bits', () => {
    expect(permissionDigits(0o100644)).toBe('0644');
    expect(permissionDigits(0o41777)).toBe('1777');
    expect(permissionDigits(0o4755)).toBe('4755');
  });
});

describe('EmulatorFiles in a local sandbox', () => {
  let sandbox: LocalSandbox;
  let files: EmulatorFiles;
  beforeAll(async () => {
    sandbox = await createLocalSandboxProvider().create({ network: 'block' });
    files = new EmulatorFiles(sandbox);
    await sandbox.run(['sh', '-c', 'mkdir -p /tmp/t/full && echo hi > /tmp/t/full/f && echo data > /tmp/t/file']);
  });
  afterAll(() => sandbox?.terminate());

  it('stat and list carry type, size and owner', async () => {
    const entry = await files.statEntry('/tmp/t/file');
    expect(entry).toMatchObject({ name: 'file', path: '/tmp/t/file', type: 'file', size: 5, owner: 'root', group: 'root' });
    const listed = await files.listEntries('/tmp/t');
    expect(listed.map((item) => [item.name, item.type, item.owner])).toEqual([
      ['file', 'file', 'root'],
      ['full', 'directory', 'root'],
    ]);
  });

  it('each failure is a FileToolError with the fault the provider APIs distinguish', async () => {
    expect(await fault(files.readStream('/tmp/t/missing'))).toBe('not_found');
    expect(await fault(files.readStream('/tmp/t'))).toBe('is_directory');
    expect(await fault(files.statEntry('/tmp/t/missing'))).toBe('not_found');
    expect(await fault(files.listEntries('/tmp/t/file'))).toBe('not_directory');
    expect(await fault(files.makeDirectory('/tmp/t/full', { parents: false }))).toBe('already_exists');
    expect(await fault(files.makeDirectory('/tmp/t/no/such', { parents: false }))).toBe('not_found');
    expect(await fault(files.makeDirectory('/tmp/t/file', { parents: true }))).toBe('already_exists');
    expect(await fault(files.remove('/tmp/t/full'))).toBe('not_empty');
    expect(await fault(files.remove('/tmp/t/missing'))).toBe('not_found');
    expect(await fault(files.write('/tmp/t/full', 'x'))).toBe('is_directory');
    expect(await fault(files.write('/tmp/t/file/below', 'x'))).toBe('not_directory');
    expect(await fault(files.write('/proc/version', 'x'))).toBe('permission_denied');
  });

  it('a path below a regular file is not_directory for every operation, never not_found', async () => {
    const below = '/tmp/t/file/below';
    const errors = await Promise.all([
      files.readStream(below).catch((error: unknown) => error),
      files.statEntry(below).catch((error: unknown) => error),
      files.listEntries(below).catch((error: unknown) => error),
      files.makeDirectory(below, { parents: true }).catch((error: unknown) => error),
      files.makeDirectory(below, { parents: false }).catch((error: unknown) => error),
      files.remove(below).catch((error: unknown) => error),
      files.write('/tmp/t/file/deeper/below', 'x').catch((error: unknown) => error),
      files.realPath(below).catch((error: unknown) => error),
    ]);
    for (const error of errors) expect(error).toMatchObject({ fault: 'not_directory', extra: { subject: 'ancestor' } });
    // Which path is the non-directory, for APIs that word it apart.
    expect(await files.listEntries('/tmp/t/file').catch((error: unknown) => error)).toMatchObject({ extra: { subject: 'path' } });
    expect(await files.write(below, 'x').catch((error: unknown) => error)).toMatchObject({ extra: { subject: 'parent' } });
  });

  it('permission_denied where the sandbox user may not', async () => {
    await sandbox.run([
      'sh',
      '-c',
      'mkdir -p /tmp/p/ro /tmp/p/shut && touch /tmp/p/ro/kept /tmp/p/shut/in && echo s > /tmp/p/secret && chmod 000 /tmp/p/secret /tmp/p/shut && chmod 555 /tmp/p/ro',
    ]);
    expect(await fault(files.readStream('/tmp/p/secret'))).toBe('permission_denied');
    expect(await fault(files.write('/tmp/p/ro/new', 'x'))).toBe('permission_denied');
    expect(await fault(files.makeDirectory('/tmp/p/ro/sub', { parents: false }))).toBe('permission_denied');
    expect(await fault(files.remove('/tmp/p/ro/kept'))).toBe('permission_denied');
    expect(await fault(files.listEntries('/tmp/p/shut'))).toBe('permission_denied');
    expect(await fault(files.statEntry('/tmp/p/shut/in'))).toBe('permission_denied');
  });

  it('stat is lstat: type bits, four-digit permissions, size, owner, fractional mtime, link target', async () => {
    await sandbox.run([
      'sh',
      '-c',
      'mkdir -p /tmp/s && printf 12345 > /tmp/s/f && chmod 4750 /tmp/s/f && ln -sfn /tmp/s/f /tmp/s/link && touch -d @1700000000.25 /tmp/s/f',
    ]);
    const file = await files.statEntry('/tmp/s/f');
    expect(file).toMatchObject({ name: 'f', path: '/tmp/s/f', type: 'file', size: 5, mode: 0o104750, owner: 'root', group: 'root' });
    expect(file.modifiedTime).toBe(1700000000.25);
    expect(permissionDigits(file.mode)).toBe('4750');
    const link = await files.statEntry('/tmp/s/link');
    expect(link).toMatchObject({ type: 'symlink', mode: 0o120777, size: '/tmp/s/f'.length, linkTarget: '/tmp/s/f' });
    expect(await files.realPath('/tmp/s/link')).toBe('/tmp/s/f');
    const listed = await files.listEntries('/tmp/s/');
    expect(listed.map((entry) => [entry.path, entry.type])).toEqual([
      ['/tmp/s/f', 'file'],
      ['/tmp/s/link', 'symlink'],
    ]);
  });

  it('a capped read refuses a larger file before reading it, and stops a file that grows past the cap', async () => {
    await sandbox.run(['sh', '-c', 'head -c 100 /dev/zero > /tmp/t/hundred && truncate -s 5368709121 /tmp/t/sparse']);
    expect((await readText(await files.readStream('/tmp/t/hundred', { maxBytes: 100 }))).length).toBe(100);
    const error = await files.readStream('/tmp/t/hundred', { maxBytes: 99 }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ fault: 'too_large', extra: { size: 100, limit: 99 } });
    // A sparse 5 GiB file: refused from its size alone, without reading a byte.
    expect(await files.readStream('/tmp/t/sparse', { maxBytes: 5 * 1024 ** 3 }).catch((caught: unknown) => caught)).toMatchObject({
      fault: 'too_large',
      extra: { size: 5 * 1024 ** 3 + 1 },
    });
    // /dev/zero has size 0 and never ends: the stream fails once it passed the cap.
    const endless = await files.readStream('/dev/zero', { maxBytes: 1 << 20 });
    expect(await readText(endless).catch((caught: unknown) => caught)).toMatchObject({ fault: 'too_large' });
  });

  it('openWrite takes the bytes as they come and reports the outcome in done', async () => {
    const { stdin, done } = await files.openWrite('/tmp/t/new/streamed.txt');
    const writer = stdin.getWriter();
    await writer.write(new TextEncoder().encode('one '));
    await writer.write(new TextEncoder().encode('two'));
    await writer.close();
    await done;
    expect(await readText(await files.readStream('/tmp/t/new/streamed.txt'))).toBe('one two');
  });

  it('makeDirectory and remove succeed where they should', async () => {
    await files.makeDirectory('/tmp/t/a/b', { parents: true });
    await files.makeDirectory('/tmp/t/a/c', { parents: false });
    expect((await files.listEntries('/tmp/t/a')).map((item) => item.name)).toEqual(['b', 'c']);
    await files.remove('/tmp/t/a', { recursive: true });
    expect(await files.exists('/tmp/t/a')).toBe(false);
  });
});
