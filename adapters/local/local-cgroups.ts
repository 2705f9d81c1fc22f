import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxProviderError } from '../../src/kit/index.js';
import type { CgroupLayout } from './local-system.js';

export interface CgroupLimits {
  cpu?: number;
  memoryMiB?: number;
  pidsLimit?: number;
}

/**
 * The cgroups of one sandbox. Processes only ever sit in leaves: `init` holds bubblewrap, and
 * every exec gets its own leaf so that its whole process tree (setsid daemons included) can be
 * found and killed without touching the rest of the sandbox.
 */
export class SandboxCgroups {
  private constructor(
    private readonly layout: CgroupLayout,
    /** Per-controller sandbox directories (v1), or the one unified directory (v2). */
    private readonly dirs: readonly string[],
    private readonly freezerDir: string,
    private readonly memoryDir: string,
  ) {}

  static async create(layout: CgroupLayout, sandboxId: string, limits: CgroupLimits): Promise<SandboxCgroups> {
    if (layout.version === 1) {
      const { memory, pids, cpu, freezer } = layout.controllers;
      const dirs = {
        memory: join(memory, 'sandport', sandboxId),
        pids: join(pids, 'sandport', sandboxId),
        cpu: join(cpu, 'sandport', sandboxId),
        freezer: join(freezer, 'sandport', sandboxId),
      };
      await Promise.all([dirs.memory, dirs.pids, dirs.cpu, join(dirs.freezer, 'init')].map((dir) => mkdir(dir, { recursive: true })));
      const cgroups = new SandboxCgroups(layout, Object.values(dirs), dirs.freezer, dirs.memory);
      try {
        if (limits.memoryMiB !== undefined) {
          const bytes = String(limits.memoryMiB * 1024 * 1024);
          await writeFile(join(dirs.memory, 'memory.limit_in_bytes'), bytes);
          // Without swap accounting the file is absent; the limit then covers RAM only.
          await writeFile(join(dirs.memory, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined);
        }
        if (limits.pidsLimit !== undefined) await writeFile(join(dirs.pids, 'pids.max'), String(limits.pidsLimit));
        if (limits.cpu !== undefined) {
          await writeFile(join(dirs.cpu, 'cpu.cfs_period_us'), '100000');
          await writeFile(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpu * 100000))));
        }
      } catch (error) {
        await cgroups.destroy();
        throw error;
      }
      return cgroups;
    }
    const dir = join(layout.base, 'sandport', sandboxId);
    await mkdir(join(layout.base, 'sandport'), { recursive: true });
    await writeFile(join(layout.base, 'cgroup.subtree_control'), '+memory +pids +cpu').catch(() => undefined);
    await writeFile(join(layout.base, 'sandport', 'cgroup.subtree_control'), '+memory +pids +cpu').catch(() => undefined);
    await mkdir(join(dir, 'init'), { recursive: true });
    const cgroups = new SandboxCgroups(layout, [dir], dir, dir);
    try {
      if (limits.memoryMiB !== undefined) {
        await writeFile(join(dir, 'memory.max'), String(limits.memoryMiB * 1024 * 1024));
        await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
      }
      if (limits.pidsLimit !== undefined) await writeFile(join(dir, 'pids.max'), String(limits.pidsLimit));
      if (limits.cpu !== undefined) await writeFile(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(limits.cpu * 100000))} 100000`);
    } catch (error) {
      await cgroups.destroy();
      throw error;
    }
    return cgroups;
  }

  /** `cgroup.procs` files a process writes its pid to, to join leaf `leaf` in every hierarchy. */
  procsFiles(leaf: string): string[] {
    if (this.layout.version === 2) return [join(this.dirs[0]!, leaf, 'cgroup.procs')];
    // Limits are set on the sandbox directory and hold for its leaves; only the freezer needs the leaf.
    return this.dirs.map((dir) => join(dir, dir === this.freezerDir ? leaf : '', 'cgroup.procs'));
  }

  async createLeaf(leaf: string): Promise<void> {
    await mkdir(join(this.freezerDir, leaf));
  }

  /** Kills every process of a leaf (or the whole sandbox) and waits until none is left. */
  async kill(leaf?: string, signal: NodeJS.Signals = 'SIGKILL', excludePids: readonly number[] = []): Promise<void> {
    const dir = leaf ? join(this.freezerDir, leaf) : this.freezerDir;
    if (signal !== 'SIGKILL') {
      for (const pid of await this.pids(dir)) if (!excludePids.includes(pid)) tryKill(pid, signal);
      return;
    }
    if (this.layout.version === 2 && excludePids.length === 0) {
      await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    } else if (this.layout.version === 2) {
      // cgroup.kill spares no one; freeze so that nothing forks between listing and killing (a
      // frozen task still dies of SIGKILL), then thaw so the spared ones run on.
      await writeFile(join(dir, 'cgroup.freeze'), '1').catch(() => undefined);
      for (const pid of await this.pids(dir)) if (!excludePids.includes(pid)) tryKill(pid, 'SIGKILL');
      await writeFile(join(dir, 'cgroup.freeze'), '0').catch(() => undefined);
    } else {
      // Freeze first so that nothing forks between listing and killing; thaw so SIGKILL is delivered.
      await writeFile(join(dir, 'freezer.state'), 'FROZEN').catch(() => undefined);
      for (const pid of await this.pids(dir)) if (!excludePids.includes(pid)) tryKill(pid, 'SIGKILL');
      await writeFile(join(dir, 'freezer.state'), 'THAWED').catch(() => undefined);
    }
  }

  /**
   * Removes an exec's leaf once the exec has exited. Processes it left running (daemons started
   * in the background) belong to the sandbox, not to the exec: they move to the init leaf and live on.
   */
  async releaseLeaf(leaf: string): Promise<void> {
    const dir = join(this.freezerDir, leaf);
    const keeper = join(this.freezerDir, 'init', 'cgroup.procs');
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await rmdir(dir);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        for (const pid of await this.pids(dir)) await writeFile(keeper, String(pid)).catch(() => undefined);
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  }

  /** Number of out-of-memory kills in this sandbox so far. */
  async oomKills(): Promise<number> {
    const file = this.layout.version === 1 ? 'memory.oom_control' : 'memory.events';
    const text = await readFile(join(this.memoryDir, file), 'utf8').catch(() => '');
    const match = /^oom_kill (\d+)$/m.exec(text);
    return match ? Number(match[1]) : 0;
  }

  /**
   * Freezes or thaws the whole sandbox (snapshots, pause). A freeze resolves once every process
   * is frozen, not merely asked to freeze: a task in an uninterruptible wait (disk, NFS) holds
   * the cgroup in FREEZING meanwhile. One that is still not frozen after `timeoutMs` is thawed
   * again, and the call throws `SandboxProviderError`.
   */
  async freeze(frozen: boolean, timeoutMs = 10_000): Promise<void> {
    await this.requestFreeze(frozen);
    if (!frozen) return;
    const deadline = Date.now() + timeoutMs;
    for (let round = 0; !(await this.isFrozen()); round++) {
      if (Date.now() > deadline) {
        await this.requestFreeze(false).catch(() => undefined);
        throw new SandboxProviderError({ message: `The sandbox's processes did not freeze within ${timeoutMs} ms`, provider: 'local' });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(20, 2 * (round + 1))));
      // v1 freezes in passes: writing FROZEN again retries the tasks that were busy.
      if (this.layout.version === 1) await this.requestFreeze(true);
    }
  }

  private async requestFreeze(frozen: boolean): Promise<void> {
    if (this.layout.version === 2) await writeFile(join(this.freezerDir, 'cgroup.freeze'), frozen ? '1' : '0');
    else await writeFile(join(this.freezerDir, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
  }

  private async isFrozen(): Promise<boolean> {
    if (this.layout.version === 2) return /^frozen 1$/m.test(await readFile(join(this.freezerDir, 'cgroup.events'), 'utf8'));
    return (await readFile(join(this.freezerDir, 'freezer.state'), 'utf8')).trim() === 'FROZEN';
  }

  /** Sandbox directories; the launcher sweeps and removes them and their leaves on the way out. */
  cleanupDirs(): readonly string[] {
    return this.dirs;
  }

  freezerStateFiles(): string[] {
    return this.layout.version === 1 ? [join(this.freezerDir, 'freezer.state')] : [];
  }

  /**
   * Kills whatever is left in the sandbox's cgroups and removes every directory, retrying while
   * killed processes are still leaving them (up to `timeoutMs`). The launcher does this on its
   * way out; this is the creator's backstop once the launcher has exited, and the cleanup of a
   * create that failed half-way. Resolves true when nothing is left. Idempotent.
   */
  async destroy(timeoutMs = 10_000): Promise<boolean> {
    return removeSandboxDirs(this.dirs, this.freezerDir, this.layout.version, timeoutMs);
  }

  private async pids(dir: string): Promise<number[]> {
    const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map(Number);
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Every cgroup directory of sandbox `sandboxId` under `layout` (the sandbox dirs, not their leaves). */
export function sandboxCgroupDirs(layout: CgroupLayout, sandboxId: string): { dirs: string[]; freezerDir: string } {
  if (layout.version === 2) {
    const dir = join(layout.base, 'sandport', sandboxId);
    return { dirs: [dir], freezerDir: dir };
  }
  const dirs = Object.values(layout.controllers).map((root) => join(root, 'sandport', sandboxId));
  return { dirs, freezerDir: join(layout.controllers.freezer, 'sandport', sandboxId) };
}

/** Ids of every sandbox with a cgroup directory under `layout`, with the directory's age in ms. */
export async function listSandboxCgroups(layout: CgroupLayout): Promise<Map<string, number>> {
  const roots = layout.version === 2 ? [layout.base] : Object.values(layout.controllers);
  const found = new Map<string, number>();
  for (const root of roots) {
    for (const entry of await readdir(join(root, 'sandport'), { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory() || !entry.name.startsWith('sb-')) continue;
      const info = await stat(join(root, 'sandport', entry.name)).catch(() => undefined);
      const age = info ? Date.now() - info.mtimeMs : 0;
      found.set(entry.name, Math.min(found.get(entry.name) ?? Number.POSITIVE_INFINITY, age));
    }
  }
  return found;
}

/** Pids in a sandbox's cgroups (every directory and leaf). */
export async function sandboxPids(dirs: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const leaf of [dir, ...(await leaves(dir))]) for (const pid of await readPids(leaf)) pids.add(pid);
  }
  return [...pids];
}

/** Kills and removes a sandbox's cgroup directories, leaves first, until gone or `timeoutMs`. */
export async function removeSandboxDirs(dirs: readonly string[], freezerDir: string, version: 1 | 2, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; ; round++) {
    let left = 0;
    for (const dir of dirs) {
      for (const leaf of await leaves(dir)) await rmdir(leaf).catch(() => undefined);
      await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') left++;
      });
    }
    if (left === 0) return true;
    if (Date.now() > deadline) return false;
    // Still populated: kill what is there (frozen first on v1, so nothing forks meanwhile).
    if (version === 2) await writeFile(join(freezerDir, 'cgroup.kill'), '1').catch(() => undefined);
    else await writeFile(join(freezerDir, 'freezer.state'), 'FROZEN').catch(() => undefined);
    for (const pid of await sandboxPids(dirs)) tryKill(pid, 'SIGKILL');
    if (version === 1) await writeFile(join(freezerDir, 'freezer.state'), 'THAWED').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, 5 * (round + 1))));
  }
}

async function leaves(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => join(dir, entry.name));
}

async function readPids(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}
