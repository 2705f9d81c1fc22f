/**
 * A "creating process" for the tests where the process that created a sandbox dies: a child Node
 * that runs `args` (a script file or `--input-type=module -e <source>`, through tsx), prints one
 * line once its sandbox exists, and then idles until the test kills it.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface StartCreatorOptions {
  /** A command the Node child runs under, such as `setpriv --reuid=65534 --`. @default none */
  readonly prefix?: readonly string[];
  /** The child's environment. @default this process's */
  readonly env?: NodeJS.ProcessEnv;
  /** Its own process group, so that `process.kill(-pid)` reaches what it spawns too. @default false */
  readonly detached?: boolean;
}

/** Starts the creator and resolves with it and the first line it printed; kills it if it exits first. */
export async function startCreator(
  args: readonly string[],
  options: StartCreatorOptions = {},
): Promise<{ creator: ChildProcess; line: string }> {
  const argv = [...(options.prefix ?? []), process.execPath, '--import', 'tsx', ...args];
  const creator = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: options.env,
    detached: options.detached ?? false,
  });
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
    try {
      if (options.detached && creator.pid !== undefined) process.kill(-creator.pid, 'SIGKILL');
      else creator.kill('SIGKILL');
    } catch {
      // The group is already gone (ESRCH): nothing is left to kill.
    }
    throw error;
  }
}
