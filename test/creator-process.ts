/**
 * A "creating process" for the tests where the process that created a sandbox dies: a child Node
 * that runs `args` (a script file or `--input-type=module -e <source>`, through tsx), prints one
 * line once its sandbox exists, and then idles until the test kills it.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** Starts the creator and resolves with it and the first line it printed; kills it if it exits first. */
export async function startCreator(args: readonly string[]): Promise<{ creator: ChildProcess; line: string }> {
  const creator = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let output = '';
      creator.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('\n')) resolve(output.split('\n')[0]!.trim());
      });
      creator.on('exit', (code) => reject(new Error(`creator exited early (${code})`)));
    });
    return { creator, line };
  } catch (error) {
    creator.kill('SIGKILL');
    throw error;
  }
}
