import { CommandExitError } from '../errors/index.js';
import { collect, concatBytes } from '../streams/index.js';
import type { Command, ExecOptions, RunOptions } from '../spec/options.js';
import type { ExecResult, SandboxProcess } from '../spec/sandbox.js';

const defaultMaxOutputBytes = 64 * 1024 * 1024;

/**
 * `Sandbox.run` derived from `Sandbox.exec`: feeds `stdin`, drains both streams concurrently
 * (so neither pipe can fill and stall the command), then waits for the exit.
 */
export async function runViaExec(
  exec: (command: Command, options: ExecOptions) => Promise<SandboxProcess>,
  command: Command,
  options: RunOptions,
  provider: string,
): Promise<ExecResult> {
  const { stdin, throwOnNonZeroExit, maxOutputBytes = defaultMaxOutputBytes, ...execOptions } = options;
  const process = await exec(command, execOptions);
  const feed = (async () => {
    const writer = process.stdin.getWriter();
    try {
      if (stdin !== undefined) await writer.write(typeof stdin === 'string' ? new TextEncoder().encode(stdin) : stdin);
      await writer.close();
    } catch {
      // The command may exit without reading its input; that is its business, not an error.
    }
  })();
  const [stdout, stderr, exit] = await Promise.all([
    collect(process.stdout, maxOutputBytes),
    collect(process.stderr, maxOutputBytes),
    process.wait(),
    feed,
  ]);
  const decoder = new TextDecoder();
  const result: ExecResult = {
    exitCode: exit.exitCode,
    signal: exit.signal,
    stdout: decoder.decode(concatBytes(stdout.chunks, stdout.total)),
    stderr: decoder.decode(concatBytes(stderr.chunks, stderr.total)),
    truncated: stdout.truncated || stderr.truncated,
  };
  if (throwOnNonZeroExit && result.exitCode !== 0) {
    throw new CommandExitError({
      message: `Command exited with code ${result.exitCode}${result.signal ? ` (${result.signal})` : ''}: ${result.stderr.slice(-500)}`,
      provider,
      ...result,
    });
  }
  return result;
}
