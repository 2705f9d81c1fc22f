import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
      const dirs = { memory: join(memory, 'sandport', sandboxId), pids: join(pids, 'sandport', sandboxId), cpu: join(cpu, 'sandport', sandboxId), freezer: join(freezer, 'sandport', sandboxId) };
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
        await cgroups.remove();
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
      await cgroups.remove();
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
    if (this.layout.version === 2) {
      await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
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

  /** Freezes or thaws the whole sandbox (used to take consistent snapshots). */
  async freeze(frozen: boolean): Promise<void> {
    if (this.layout.version === 2) await writeFile(join(this.freezerDir, 'cgroup.freeze'), frozen ? '1' : '0');
    else await writeFile(join(this.freezerDir, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
  }

  /** Sandbox directories; the launcher sweeps and removes them and their leaves on the way out. */
  cleanupDirs(): readonly string[] {
    return this.dirs;
  }

  freezerStateFiles(): string[] {
    return this.layout.version === 1 ? [join(this.freezerDir, 'freezer.state')] : [];
  }

  /** Removes every directory, killing what is left. Used when create fails half-way. */
  async remove(): Promise<void> {
    for (const dir of this.dirs) {
      await rmdir(join(dir, 'init')).catch(() => undefined);
      await rmdir(dir).catch(() => undefined);
    }
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
