/**
 * What the local and Docker providers leave on this host, counted by kind, for the conformance
 * suite's `hostResources` option (the leak tests) and the crash tests in test/security.
 *
 * The machine is shared: other test processes create sandboxes at the same time. Local resources
 * are attributed through the sandbox's launcher (a child of the process that created it): those
 * of a live launcher of another process are not counted. Orphans (no live launcher) always are,
 * whoever made them, because that is what a leak looks like.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, type Dirent } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeLocalSystem } from '../adapters/local/local-system.js';

/** The local provider's default state directory (see local-provider.ts). */
export const localStateDir = join(tmpdir(), `sandport-${process.getuid?.() ?? 'user'}`);

interface ProcessEntry {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

function processTable(): Map<number, ProcessEntry> {
  const table = new Map<number, ProcessEntry>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      table.set(Number(entry), { pid: Number(entry), ppid, comm, cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** The live launcher of another process that owns this sandbox id, if any. */
function ownedElsewhere(id: string, table: Map<number, ProcessEntry>, stateDir: string): boolean {
  const pid = Number(readOr(join(stateDir, id, 'launcher.pid'), '0'));
  const launcher = table.get(pid);
  return launcher?.cmdline.includes('sandport-launcher') === true && launcher.ppid !== process.pid;
}

/** True when a process descends from a live launcher of another process. */
function descendsFromForeignLauncher(entry: ProcessEntry, table: Map<number, ProcessEntry>): boolean {
  for (let current = table.get(entry.ppid), depth = 0; current && depth < 64; current = table.get(current.ppid), depth++) {
    if (current.cmdline.includes('sandport-launcher')) return current.ppid !== process.pid;
    if (current.pid === process.pid) return false;
  }
  return false;
}

/**
 * Whether a `bwrap` process counts for this process: one of its own (it descends from this
 * process) or an orphan (its parent is init, whoever made it: that is what a leak looks like).
 * One that descends from another live process tree does not: an emulator in another test file
 * runs its exec helpers as children of its own process, not of a launcher.
 */
function countedBwrap(entry: ProcessEntry, table: Map<number, ProcessEntry>): boolean {
  if (entry.ppid <= 1) return true;
  if (descendsFromForeignLauncher(entry, table)) return false;
  for (let current = table.get(entry.ppid), depth = 0; current && depth < 64; current = table.get(current.ppid), depth++) {
    if (current.pid === process.pid) return true;
  }
  return false;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** The `sandport` cgroup directories the local provider creates sandboxes under (local-cgroups.ts). */
export async function localCgroupRoots(): Promise<string[]> {
  const layout = (await probeLocalSystem()).cgroups;
  if (!layout) return [];
  const parents = layout.version === 1 ? Object.values(layout.controllers) : [layout.base];
  return parents.map((parent) => join(parent, 'sandport'));
}

/** Sandbox cgroup directories and their leaves, as paths, under every sandport root. */
export async function localCgroupDirs(): Promise<string[]> {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed meanwhile, or no such root
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      found.push(join(dir, entry.name));
      if (depth < 2) walk(join(dir, entry.name), depth + 1);
    }
  };
  for (const root of await localCgroupRoots()) walk(root, 0);
  return found;
}

/** Pids of every `bwrap` process on the host. */
export function bwrapPids(): number[] {
  return [...processTable().values()].filter((entry) => entry.comm === 'bwrap').map((entry) => entry.pid);
}

/** Counts for the conformance suite's `hostResources`, for the local provider. */
export async function localHostResources(stateDir = localStateDir): Promise<Record<string, number>> {
  const table = processTable();
  const idOf = (path: string) => /\b(sb-[0-9a-f]+)\b/.exec(path)?.[1];
  const mine = (path: string) => {
    const id = idOf(path);
    return id === undefined || !ownedElsewhere(id, table, stateDir);
  };
  const cgroups = (await localCgroupDirs()).filter(mine);
  const stateEntries = listDir(stateDir).filter((entry) => entry === 'images' || entry === 'snapshots' || mine(entry));
  const images = listDir(join(stateDir, 'images'));
  const mounts = readOr('/proc/self/mountinfo', '')
    .split('\n')
    .filter((line) => (line.includes(stateDir) || line.includes('/sandport/')) && mine(line));
  const bwrap = [...table.values()].filter((entry) => entry.comm === 'bwrap' && countedBwrap(entry, table));
  const helpers = [...table.values()].filter(
    (entry) =>
      ['slirp4netns', 'socat'].includes(entry.comm) && entry.cmdline.includes(stateDir) && !descendsFromForeignLauncher(entry, table),
  );
  return {
    'local: cgroup directories': cgroups.length,
    'local: state dir entries': stateEntries.length,
    // Prepared root filesystems are kept on purpose; a staging copy left behind is not.
    'local: image staging dirs': images.filter((entry) => entry.endsWith('.tmp')).length,
    'local: mounts': mounts.length,
    'local: bwrap processes': bwrap.length,
    'local: network and port helpers': helpers.length,
  };
}

/** The label every sandport container and network carries (adapters/docker/docker-sandbox.ts). */
export const dockerManagedLabel = 'dev.sandport.managed';

function docker(args: string[]): string[] {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 30_000 }).split('\n').filter(Boolean);
}

/** The `dev.sandport.creator` label: `<hostname>:<pid>` of the process that created the container. */
const dockerCreatorLabel = 'dev.sandport.creator';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Counts for the conformance suite's `hostResources`, for the Docker provider: containers this
 * process created, unlabelled ones, and stopped ones whose creator died. Those of another live
 * process, and running ones whose creator died (their lifetime holds them), are not counted.
 */
export async function dockerHostResources(): Promise<Record<string, number>> {
  const containers = docker([
    'ps',
    '-a',
    '--filter',
    `label=${dockerManagedLabel}=true`,
    '--format',
    `{{.ID}} {{.State}} {{.Label "${dockerCreatorLabel}"}}`,
  ])
    .map((line) => line.split(' '))
    .filter(([, state, creator]) => {
      const [host, pid] = (creator ?? '').split(':');
      if (host !== hostname() || Number(pid) === process.pid) return true;
      // A running (or paused) container whose creator died is held by its lifetime, by design; a stopped one is not.
      return !alive(Number(pid)) && state !== 'running' && state !== 'paused';
    });
  return {
    'docker: sandport containers': containers.length,
    // Paused ones are alive (pause keeps them): what counts here is stopped containers left behind.
    'docker: sandport containers not running': containers.filter(([, state]) => state !== 'running' && state !== 'paused').length,
    'docker: sandport networks': docker(['network', 'ls', '--filter', `label=${dockerManagedLabel}`, '--format', '{{.ID}}']).length,
  };
}

/** Host processes whose command line (arguments joined by spaces) contains `text`. */
export function hostProcessesWith(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(text)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
