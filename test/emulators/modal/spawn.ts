import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** The Modal emulator in a child process (see serve.ts). */
export interface ModalEmulatorProcess {
  readonly url: string;
  close(): Promise<void>;
}

export async function spawnModalEmulator(): Promise<ModalEmulatorProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'serve.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /MODAL_SERVER_URL=(\S+)\n/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the Modal emulator exited during start (${code})`)));
  });
  return {
    url,
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
