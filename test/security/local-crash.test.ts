/**
 * The local provider when its creator dies together with its launchers: a process-group SIGKILL
 * (`kill -KILL -<pgid>`, what `timeout -s KILL` and container runtimes do). No launcher is left
 * to clean up then, so the sandbox must die with its creator by other means, and nothing of it
 * (bwrap processes, daemons, cgroup or state directories) may remain.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostProcessesWith, localCgroupDirs } from '../host-resources.js';
import { startCreator } from '../creator-process.js';

const isRoot = process.getuid?.() === 0;

/** Pids of `bwrap` processes whose command line names one of the sandboxes' state directories. */
function bwrapOf(stateDirs: readonly string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (comm === 'bwrap' && stateDirs.some((dir) => cmdline.includes(dir))) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

if (!isRoot)
  console.warn('skipping the local crash tests: they check cgroup directories and run the creator as another user, which needs root');

describe.skipIf(!isRoot)('local provider: creator and launchers SIGKILLed as a process group (running as root)', () => {
  it.each([
    ['as root', []],
    ['unprivileged', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--']],
  ] as const)(
    'nothing of its sandboxes remains (%s)',
    async (_mode, prefix) => {
      const marker = `6${Math.floor(Math.random() * 1e6)}`;
      // Its own process group: the launchers it spawns join it, and one signal reaches them all.
      const { creator, line } = await startCreator([join(import.meta.dirname, 'fixtures', 'creator.ts'), marker], {
        prefix,
        env: { ...process.env, HOME: '/tmp', TMPDIR: '/tmp' },
        detached: true,
      });
      let made: Array<{ id: string; stateDir: string }> = [];
      try {
        made = JSON.parse(line) as Array<{ id: string; stateDir: string }>;
        expect(made.length).toBe(2);
        expect(hostProcessesWith(`sleep ${marker}`).length).toBe(2);
        expect(bwrapOf(made.map((sandbox) => sandbox.stateDir)).length).toBeGreaterThan(0);
      } finally {
        process.kill(-creator.pid!, 'SIGKILL');
      }
      const cgroupsOf = async () => (await localCgroupDirs()).filter((dir) => made.some((sandbox) => dir.includes(sandbox.id)));
      const remains = async () => ({
        daemons: hostProcessesWith(`sleep ${marker}`),
        bwrap: bwrapOf(made.map((sandbox) => sandbox.stateDir)),
        stateDirs: made.filter((sandbox) => existsSync(sandbox.stateDir)).map((sandbox) => sandbox.stateDir),
        cgroupDirs: await cgroupsOf(),
      });
      const nothing = { daemons: [], bwrap: [], stateDirs: [], cgroupDirs: [] };
      const deadline = Date.now() + 15_000;
      let left = await remains();
      while (Date.now() < deadline && JSON.stringify(left) !== JSON.stringify(nothing)) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        left = await remains();
      }
      try {
        expect(left).toEqual(nothing);
      } finally {
        // What this test's creator left must not stay on a shared machine (only its own pids and paths).
        for (const pid of [...left.daemons, ...left.bwrap]) tryKill(pid);
        for (const dir of left.stateDirs) rmSync(dir, { recursive: true, force: true });
        for (const dir of [...left.cgroupDirs].reverse()) await rmdir(dir).catch(() => undefined);
      }
    },
    90_000,
  );
});
