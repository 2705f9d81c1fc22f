/**
 * The shared file tools against a real local sandbox (bubblewrap): faults come out typed, entries
 * carry owners, and writes stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider, type LocalSandbox } from '../../../adapters/local/index.js';
import { readText } from '../../../src/kit/index.js';
import { EmulatorFiles, FileToolError, classifyFileFailure, permissionString, type FileFault } from './file-tools.js';

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
