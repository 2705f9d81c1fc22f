import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { eventually, type ConformanceTestBody, type SuiteContext } from './context.js';

/** How long counts may take to come back after the last terminate (helpers exit asynchronously). */
const settleMs = 30_000;

/**
 * After many sandboxes came and went, nothing of them may remain on the host: this process's
 * file descriptors and child processes, plus whatever the adapter's test reports through the
 * suite's `hostResources` option (cgroup directories, mounts, containers, …), each back to the
 * count it had before.
 */
export function leakTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const cycles = context.options.scale?.leakCycles ?? 300;

  /** Like `context.test`, with a longer time limit, for tests made of many bounded rounds. */
  const longTest = (id: string, title: string, body: ConformanceTestBody, timeoutMs: number, unsupportedReason?: string) =>
    context.test(id, title, body, unsupportedReason, { minTimeoutMs: timeoutMs });

  /** The host's counts, waiting until none is above `baseline`; returns what is still above. */
  const excessOver = async (baseline: Record<string, number>): Promise<string[]> => {
    let excess: string[] = [];
    await eventually(async () => (excess = over(baseline, await hostResources(context))).length === 0, settleMs, 250);
    return excess;
  };

  const cycle = async (index: number, extra: CreateSandboxOptions = {}) => {
    // Straight from the provider, so that the suite holds no reference to a finished sandbox.
    const sandbox: Sandbox = await context.provider.create({ ...context.options.createOptions, tags: { leak: context.runId }, ...extra });
    try {
      const result = await sandbox.run(['/bin/sh', '-c', `echo cycle ${index}`]);
      expect(result.stdout).toBe(`cycle ${index}\n`);
      await sandbox.files.write('/tmp/leak-check.txt', `cycle ${index}`);
      expect(await sandbox.files.readText('/tmp/leak-check.txt')).toBe(`cycle ${index}`);
    } finally {
      await sandbox.terminate();
    }
  };

  describe('leaks', () => {
    longTest(
      'leaks.cycles',
      `${cycles} create/exec/files/terminate cycles leave host resources at their baseline`,
      async () => {
        await cycle(-1); // warm-up: lazily opened connections and caches are not leaks
        const baseline = await hostResources(context);
        for (let index = 0; index < cycles; index++) await cycle(index);
        expect(await excessOver(baseline)).toEqual([]);
      },
      cycles * 5_000 + 2 * settleMs,
    );

    longTest(
      'leaks.concurrent',
      '32 concurrent create/exec/terminate leave host resources at their baseline',
      async () => {
        await cycle(-1);
        const baseline = await hostResources(context);
        const outcomes = await Promise.allSettled(
          Array.from({ length: 32 }, async (_, index) => {
            const sandbox = await context.provider.create({ ...context.options.createOptions, tags: { leak: context.runId } });
            try {
              expect((await sandbox.run(['/bin/sh', '-c', `echo ${index}`])).stdout).toBe(`${index}\n`);
            } finally {
              await sandbox.terminate();
            }
          }),
        );
        const failed = outcomes.flatMap((outcome) =>
          outcome.status === 'rejected' ? [String((outcome.reason as Error)?.message ?? outcome.reason)] : [],
        );
        expect(failed).toEqual([]);
        expect(await excessOver(baseline)).toEqual([]);
      },
      32 * 10_000 + 2 * settleMs,
    );

    longTest(
      'leaks.duplicate-ports',
      'sandboxes created with duplicate ports leave host resources at their baseline',
      async () => {
        await cycle(-1, { ports: [8080] });
        const baseline = await hostResources(context);
        for (let index = 0; index < 5; index++) {
          // Rejecting duplicates is allowed; accepting them must not leak what the tunnel opened.
          await cycle(index, { ports: [8080, 8080] }).catch((error: unknown) => {
            if ((error as { code?: string }).code !== 'invalid_argument') throw error;
          });
        }
        expect(await excessOver(baseline)).toEqual([]);
      },
      5 * 10_000 + 2 * settleMs,
      context.capabilities.tunnels ? undefined : 'provider has no tunnels',
    );
  });
}

/** This process's open fds and children (where /proc exists), plus the adapter's own counts. */
async function hostResources(context: SuiteContext): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  if (existsSync('/proc/self/fd')) {
    counts['this process: open file descriptors'] = readdirSync('/proc/self/fd').length;
    counts['this process: child processes'] = childProcesses();
  }
  return { ...counts, ...(await context.options.hostResources?.()) };
}

function childProcesses(): number {
  let children = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The comm field may hold spaces and parentheses: the ppid is the second field after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) children++;
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

/** Kinds whose count is above the baseline, as `kind: baseline → now`. */
function over(baseline: Record<string, number>, now: Record<string, number>): string[] {
  return Object.entries(now)
    .filter(([kind, count]) => count > (baseline[kind] ?? 0))
    .map(([kind, count]) => `${kind}: ${baseline[kind] ?? 0} → ${count}`);
}
