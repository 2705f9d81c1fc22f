import { describe, expect, it } from 'vitest';
import * as sandport from '../../src/index.js';
import {
  CommandExitError,
  SandboxError,
  SandboxFileNotFoundError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
} from '../../src/index.js';

describe('SandboxError family', () => {
  it('isInstance works by marker, across copies of the class', () => {
    const error = new SandboxFileNotFoundError({ message: 'gone', path: '/x', provider: 'local', cause: new Error('ENOENT') });
    expect(SandboxError.isInstance(error)).toBe(true);
    expect(SandboxFileNotFoundError.isInstance(error)).toBe(true);
    expect(SandboxNotFoundError.isInstance(error)).toBe(false);
    expect(error.code).toBe('file_not_found');
    expect(error.provider).toBe('local');
    expect((error.cause as Error).message).toBe('ENOENT');
    // A structurally identical error from another copy of the package (ESM vs CJS) still matches.
    const foreign = Object.assign(new Error('from another copy'), { [Symbol.for('sandport.error')]: true, code: 'timeout' });
    expect(SandboxError.isInstance(foreign)).toBe(true);
    expect(SandboxTimeoutError.isInstance(foreign)).toBe(true);
    expect(SandboxError.isInstance(new Error('plain'))).toBe(false);
    expect(SandboxError.isInstance(null)).toBe(false);
  });

  it('carries retryable and the fields of each subclass', () => {
    expect(new SandboxProviderError({ message: 'x', retryable: true, statusCode: 503 }).retryable).toBe(true);
    expect(new SandboxNotFoundError({ message: 'x' }).retryable).toBe(false);
    const exit = new CommandExitError({ message: 'x', exitCode: 2, stdout: 'o', stderr: 'e' });
    expect([exit.exitCode, exit.stdout, exit.stderr, exit.name]).toEqual([2, 'o', 'e', 'CommandExitError']);
    const timeout = new SandboxTimeoutError({ message: 'x', timeoutMs: 5, operation: 'exec' });
    expect([timeout.timeoutMs, timeout.operation]).toEqual([5, 'exec']);
  });

  it('exports every error class from the root entry', async () => {
    const { readdir, readFile } = await import('node:fs/promises');
    const names = new Set<string>();
    for (const file of await readdir(new URL('../../src/errors/', import.meta.url))) {
      const text = await readFile(new URL(`../../src/errors/${file}`, import.meta.url), 'utf8');
      for (const match of text.matchAll(/export class (\w+)/g)) names.add(match[1]!);
    }
    expect(names.size).toBeGreaterThan(8);
    for (const name of names) expect(Object.keys(sandport)).toContain(name);
  });
});
