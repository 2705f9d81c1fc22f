/**
 * The host-side variant of the marker killer, for providers whose sandboxes are processes of this
 * host (local, Docker with a local engine): it scans `/proc/<pid>/environ` for the exec's marker.
 * From the host it works even when the command exhausted the sandbox's pids limit, when nothing
 * more can start inside. It needs permission to read other processes' environments (root, or the
 * same user).
 */
import { readdir, readFile } from 'node:fs/promises';
import { execMarkerVariable } from './exec-wrapper.js';

/** Pids of this host's processes whose environment carries `SANDPORT_EXEC_ID=<execId>`. */
export async function processesMarkedWith(execId: string): Promise<number[]> {
  const marker = `${execMarkerVariable}=${execId}`;
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    if (environ.split('\0').includes(marker)) found.push(Number(entry));
  }
  return found;
}

/**
 * Signals every marked process, sweeping until none is left or `rounds` sweeps ran (a tree that
 * forks while being killed needs several). Returns how many signals were delivered.
 */
export async function signalMarkedProcesses(
  execId: string,
  signal: NodeJS.Signals,
  options: { rounds?: number; pauseMs?: number } = {},
): Promise<number> {
  const rounds = options.rounds ?? (signal === 'SIGKILL' ? 20 : 1);
  let delivered = 0;
  for (let round = 0; round < rounds; round++) {
    const marked = await processesMarkedWith(execId);
    if (marked.length === 0) break;
    for (const pid of marked) {
      try {
        process.kill(pid, signal);
        delivered++;
      } catch {
        // gone meanwhile
      }
    }
    if (round + 1 < rounds) await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 20));
  }
  return delivered;
}

/** Whether this process can read other processes' environments here (Linux, as root). */
export function canScanHostProcesses(): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0;
}
