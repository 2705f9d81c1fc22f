/**
 * The provider's state directory (one subdirectory per sandbox, plus snapshots and prepared
 * images), and the sweep that removes what sandboxes of crashed processes left behind.
 */
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSandboxCgroups, removeSandboxDirs, sandboxCgroupDirs, sandboxPids } from './local-cgroups.js';
import type { LocalSystem } from './local-system.js';

/** A sandbox directory or cgroup this young may belong to a create still in progress elsewhere. */
const youngMs = 60_000;
/** Creates sweep at most this often per state directory (the first create always does). */
const sweepEveryMs = 30_000;
const lastSweep = new Map<string, number>();

/** Creates the state directory (mode 0711: sandboxes' host uid must traverse it, never list it). */
export async function prepareStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o711 });
  await chmod(stateDir, 0o711);
}

/**
 * Lays out one sandbox's directory: `layer` (its writable root), `ports` (bridge sockets), the
 * masks bwrap binds over host secrets, and the overlay's `work` and `merged`.
 */
export async function makeSandboxDir(dir: string, options: { isRoot: boolean; sandboxUid: number }): Promise<void> {
  await mkdir(dir, { mode: 0o711 });
  const layer = join(dir, 'layer');
  await mkdir(layer, { mode: 0o755 });
  await mkdir(join(dir, 'ports'), { mode: 0o700 });
  if (options.isRoot) {
    await chown(layer, options.sandboxUid, options.sandboxUid);
    await chown(join(dir, 'ports'), options.sandboxUid, options.sandboxUid);
  }
  // The overlay's directories, for rootfs images (whether one is used is known only later).
  await mkdir(join(dir, 'work'));
  await mkdir(join(dir, 'merged'));
  await writeFile(join(dir, 'resolv.conf'), 'nameserver 10.0.2.3\n');
  await writeFile(join(dir, 'empty'), '');
  await mkdir(join(dir, 'empty-dir'), { mode: 0o555 });
}

/** Removes a sandbox directory, even one whose layer the sandbox made unwritable. Idempotent. */
export async function removeSandboxDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(async () => {
    await chmodTree(dir);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  });
}

/** Whether a sweep is due for `stateDir` (the first call in a process always is). */
export function sweepDue(stateDir: string): boolean {
  const last = lastSweep.get(stateDir);
  if (last !== undefined && Date.now() - last < sweepEveryMs) return false;
  lastSweep.set(stateDir, Date.now());
  return true;
}

/**
 * Removes what sandboxes of dead launchers left: their directories in `stateDir`, their cgroup
 * directories (killing any process still in them), and helper processes naming their directory.
 * A sandbox counts as alive while a process in its cgroups is a child of a launcher, or while
 * its directory names a running launcher; anything younger than a minute without either may be
 * a create in progress in another process, and is left alone. Never throws.
 */
export async function sweepStale(
  stateDir: string,
  system: Pick<LocalSystem, 'cgroups'>,
  isOurs: (sandboxId: string) => boolean,
): Promise<void> {
  const stale = new Set<string>();
  for (const entry of await readdir(stateDir).catch(() => [] as string[])) {
    if (!entry.startsWith('sb-') || isOurs(entry)) continue;
    const dir = join(stateDir, entry);
    const pid = Number(await readFile(join(dir, 'launcher.pid'), 'utf8').catch(() => '0'));
    if (pid > 0 && (await isLauncher(pid))) continue;
    const age = Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? 0);
    if (pid === 0 && age < youngMs) continue;
    stale.add(entry);
  }
  const layout = system.cgroups;
  if (layout) {
    for (const [sandboxId, age] of await listSandboxCgroups(layout)) {
      if (stale.has(sandboxId) || isOurs(sandboxId)) continue;
      const { dirs } = sandboxCgroupDirs(layout, sandboxId);
      const pids = await sandboxPids(dirs);
      if (pids.length === 0 ? age >= youngMs : !(await anyChildOfLauncher(pids))) stale.add(sandboxId);
    }
  }
  if (stale.size === 0) return;
  const dirs = [...stale].map((sandboxId) => join(stateDir, sandboxId));
  for (const pid of await processesNaming(dirs)) tryKill(pid);
  for (const sandboxId of stale) {
    if (layout) {
      const { dirs: cgroupDirs, freezerDir } = sandboxCgroupDirs(layout, sandboxId);
      await removeSandboxDirs(cgroupDirs, freezerDir, layout.version, 5_000).catch(() => false);
    }
    await removeSandboxDir(join(stateDir, sandboxId));
  }
}

async function isLauncher(pid: number): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('sandport-launcher');
}

async function anyChildOfLauncher(pids: readonly number[]): Promise<boolean> {
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // The comm field may hold spaces and parentheses: the ppid is the second field after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid > 0 && (await isLauncher(ppid))) return true;
  }
  return false;
}

/** Host processes whose command line mentions one of `dirs` (bridges of a crashed sandbox). */
async function processesNaming(dirs: readonly string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    if (dirs.some((dir) => cmdline.includes(`${dir}/`))) found.push(Number(entry));
  }
  return found;
}

async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined);
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) await chmodTree(join(dir, entry.name));
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}
