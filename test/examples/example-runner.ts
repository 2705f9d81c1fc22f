/**
 * Runs an example program as a user would (`node --import tsx`), with a preload that resolves
 * `*.localhost` tunnel host names to loopback, for the tests that run examples against an
 * emulator and again on the local provider with their one provider line swapped.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const preload = join(root, 'test', 'emulators', 'e2b', 'localhost-resolution-preload.ts');

export interface ExampleRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `file` to its end; the child is killed at 100 s, before a test's own timeout, so a hung example leaves nothing behind. */
export async function runExample(file: string, env: NodeJS.ProcessEnv): Promise<ExampleRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', preload, file], { cwd: root, env, timeout: 100_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

/**
 * Runs examples/`file` with `from` (its provider line) replaced by `to`, from a copy removed
 * afterwards. `providerLines` is how many lines equal `from`: the caller asserts it is one.
 */
export async function runWithProviderLine(
  file: string,
  from: string,
  to: string,
  env: NodeJS.ProcessEnv,
): Promise<ExampleRun & { providerLines: number }> {
  const source = readFileSync(join(root, 'examples', file), 'utf8');
  const providerLines = source.split('\n').filter((line) => line === from).length;
  const copy = join(root, 'examples', `.tmp-local-${process.pid}-${file}`);
  writeFileSync(copy, source.replace(from, to));
  try {
    return { ...(await runExample(copy, env)), providerLines };
  } finally {
    rmSync(copy, { force: true });
  }
}

/** The local provider line every swappable example carries, as written. */
export const localProviderLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";

/** The Modal line a test swaps in for `localProviderLine`, as the examples' headers say. */
export const modalProviderLine =
  "const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });";

/** What a user sets to point the Modal SDK at a server (here the emulator), with its credentials. */
export function modalExampleEnv(serverUrl: string): Record<string, string> {
  return { MODAL_SERVER_URL: serverUrl, MODAL_TOKEN_ID: 'ak-examples', MODAL_TOKEN_SECRET: 'as-examples', MODAL_LOGLEVEL: 'error' };
}
