/**
 * Starts an emulator in a child process, so that a test or a benchmark measures its client side
 * alone (as it would against the real service): the emulator's sandboxes, buffers and CPU are not
 * in the test's process. The child runs serve-emulator.ts, which loads the emulator module, calls
 * its start function and prints the URL.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { urlLinePattern } from './serve-emulator.js';

export interface SpawnEmulatorOptions {
  /** Absolute path of the module that exports the start function (a .ts file: the child runs tsx). */
  module: string;
  /** Name of the exported `start(options) => Promise<{ url, close }>` function. */
  exportName: string;
  /** Passed to the start function, through JSON: plain data only. @default undefined */
  options?: unknown;
  /** For error messages, e.g. "the Modal emulator". @default the module's path */
  label?: string;
  /** How long `close` waits after SIGTERM before SIGKILL, in ms. @default 30_000 */
  killAfterMs?: number;
}

/** An emulator running in its own process. */
export interface EmulatorProcess {
  /** The emulator's base URL on loopback. */
  readonly url: string;
  /** The child's pid, for diagnostics. */
  readonly pid: number;
  /** Stops the child (SIGTERM, then SIGKILL after `killAfterMs`). Idempotent. */
  close(): Promise<void>;
}

/**
 * Spawns the emulator and resolves once it prints its URL. Rejects if the child exits first. The
 * child's stderr is the parent's, so the emulator's own diagnostics show in the test output; its
 * stdin is a pipe, so it ends when the parent dies without closing it.
 */
export async function spawnEmulator(options: SpawnEmulatorOptions): Promise<EmulatorProcess> {
  const label = options.label ?? options.module;
  const args = ['--import', 'tsx', join(import.meta.dirname, 'serve-emulator.ts'), options.module, options.exportName];
  if (options.options !== undefined) args.push(JSON.stringify(options.options));
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = urlLinePattern.exec(output);
      if (!match) return;
      // Stop collecting, but keep the pipe flowing, so that a chatty emulator never blocks on it.
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`${label} exited during start (${signal ?? code})`)));
  });
  return {
    url,
    pid: child.pid!,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
