/**
 * Local-only reliability (issue 18): after terminate, a failed or aborted create, or the creator
 * being SIGKILLed with its launchers, nothing of a sandbox stays on the host: no cgroup
 * directory, no state directory, no process, no file descriptor of this process.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { SandboxInvalidArgumentError } from '../../src/kit/index.js';
import { hostProcessesWith } from '../host-resources.js';
import { startCreator } from '../creator-process.js';

const isRoot = process.getuid?.() === 0;
const stateDir = mkdtempSync(join(tmpdir(), 'sandport-behaviour-'));
const provider = createLocalSandboxProvider({ stateDir });
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** Every cgroup directory of a sandbox id, in any hierarchy (v1 controllers or v2), found by walking. */
function cgroupDirsOf(sandboxId: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 6) return;
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      if (entry.name === 'sandport') {
        if (existsSync(join(dir, entry.name, sandboxId))) found.push(join(dir, entry.name, sandboxId));
      } else if (depth < 3) {
        walk(join(dir, entry.name), depth + 1);
      }
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

/** What is left of sandbox `id` of state directory `dir` (empty when nothing). */
function leftovers(id: string, dir = stateDir): string[] {
  return [
    ...cgroupDirsOf(id).map((path) => `cgroup ${path}`),
    ...(existsSync(join(dir, id)) ? [`state dir ${join(dir, id)}`] : []),
    ...hostProcessesWith(join(dir, id)).map((pid) => `process ${pid}`),
  ];
}

const openFds = () => readdirSync('/proc/self/fd').length;

/** Polls until `check` holds on `stableChecks` polls in a row (50 ms apart), or `timeoutMs` passes. */
async function eventually(check: () => boolean, timeoutMs = 10_000, stableChecks = 1): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let streak = 0;
  while (Date.now() < deadline) {
    streak = check() ? streak + 1 : 0;
    if (streak >= stableChecks) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Ids of the sandbox directories created in the state directory while `body` runs (inotify). */
async function idsCreatedDuring(body: () => Promise<void>): Promise<string[]> {
  const ids = new Set<string>();
  const watcher = watch(stateDir, (_event, name) => {
    if (typeof name === 'string' && name.startsWith('sb-')) ids.add(name);
  });
  try {
    await body();
  } finally {
    watcher.close();
  }
  return [...ids];
}

describe.skipIf(process.platform !== 'linux')('local provider leaves nothing behind', () => {
  it('terminate releases cgroups, the state dir, processes and tunnel fds (40 cycles, then 16 at once)', async () => {
    const warm = await provider.create({ network: 'block', ports: [8080] });
    await warm.terminate();
    const fds = openFds();
    const ids: string[] = [];
    const cycle = async (index: number) => {
      const sandbox = await provider.create({ network: 'block', ports: [8080] });
      ids.push(sandbox.id);
      try {
        expect((await sandbox.run(['/bin/sh', '-c', `echo ${index}; (setsid sleep 600 >/dev/null 2>&1 &)`])).stdout).toBe(`${index}\n`);
        await sandbox.files.write('/tmp/cycle.txt', String(index));
        // A tunnel connection left open by the client must not keep a host fd after terminate.
        const tunnel = (await sandbox.tunnels())[8080]!;
        const socket = connect(tunnel.hostPort, '127.0.0.1');
        socket.on('error', () => undefined);
        await new Promise((resolve) => socket.once('connect', resolve));
        await sandbox.terminate();
        socket.destroy();
      } finally {
        await sandbox.terminate();
      }
    };
    for (let index = 0; index < 40; index++) await cycle(index);
    await Promise.all(Array.from({ length: 16 }, (_, index) => cycle(100 + index)));
    const left = ids.flatMap((id) => leftovers(id));
    expect(left).toEqual([]);
    await eventually(() => openFds() <= fds);
    expect(openFds()).toBeLessThanOrEqual(fds);
  }, 600_000);

  it('killed commands leave no zombie that only the host could reap', async () => {
    await using sandbox = await provider.create({ network: 'block', pidsLimit: 64 });
    // `pid (comm) state ppid`: a zombie whose parent is outside the sandbox shows ppid 0. Only
    // the host's init can reap it, and in a container whose pid 1 never reaps, it stays,
    // holding a pid of the sandbox's pidsLimit.
    const orphanedZombies = async () =>
      (await sandbox.run(['sh', '-c', 'for s in /proc/[0-9]*/stat; do read -r line < "$s" && echo "$line"; done'])).stdout
        .split('\n')
        .filter((line) => / Z 0 /.test(line));
    for (let index = 0; index < 8; index++) {
      const process = await sandbox.exec(['sh', '-c', 'echo ready; sleep 300 & wait']);
      await process.stdout.getReader().read(); // running, not still starting
      await process.kill(index % 2 === 0 ? 'SIGKILL' : 'SIGTERM');
      await process.wait();
    }
    // The command's parent reaps it before the exec reports its end, so none is left at that point.
    expect(await orphanedZombies()).toEqual([]);
  }, 120_000);

  it('a create whose entrypoint program is missing rejects and releases everything', async () => {
    const ids = await idsCreatedDuring(async () => {
      const error = await provider
        .create({ network: 'block', command: ['definitely-not-a-program-xyz'] })
        .catch((caught: unknown) => caught);
      expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
      expect((error as SandboxInvalidArgumentError).argument).toBe('command');
    });
    expect(ids).toHaveLength(1);
    expect(await provider.list()).toEqual([]);
    expect(ids.flatMap((id) => leftovers(id))).toEqual([]);
  }, 120_000);

  it('creates aborted at random moments reject with signal.reason and release everything', async () => {
    const outcomes: string[] = [];
    const ids = await idsCreatedDuring(async () => {
      for (let round = 0; round < 24; round++) {
        const controller = new AbortController();
        const reason = new Error(`abort ${round}`);
        const creating = provider.create({ network: 'block', ports: [8080], signal: controller.signal });
        setTimeout(() => controller.abort(reason), round % 12 === 0 ? 0 : Math.floor(Math.random() * 60));
        const outcome = await creating.then(
          async (sandbox) => {
            const abortedFirst = controller.signal.aborted;
            await sandbox.terminate();
            return abortedFirst ? 'resolved after its signal fired' : 'ok';
          },
          (error: unknown) => (error === reason ? 'ok' : `rejected with ${String(error)}`),
        );
        controller.abort(reason);
        outcomes.push(outcome);
      }
    });
    expect(outcomes.filter((outcome) => outcome !== 'ok')).toEqual([]);
    expect(await provider.list()).toEqual([]);
    expect(ids.flatMap((id) => leftovers(id))).toEqual([]);
  }, 300_000);

  it.skipIf(!isRoot).each(['running', 'paused'])(
    'a creator SIGKILLed together with its launchers (one process group) takes its %s sandboxes along; cleanup() sweeps the rest (as root: cgroups)',
    async (state) => {
      const marker = `7${Math.floor(Math.random() * 1e6)}`;
      const { creator, line } = await startCreator([join(import.meta.dirname, '..', 'security', 'fixtures', 'creator.ts'), marker, state], {
        detached: true,
      });
      const made = JSON.parse(line) as Array<{ id: string; stateDir: string }>;
      // A daemon in the middle of its execve shows an empty command line for a moment.
      await eventually(() => hostProcessesWith(`sleep ${marker}`).length === 2, 5_000);
      expect(hostProcessesWith(`sleep ${marker}`)).toHaveLength(2);
      // The whole group at once: the launchers get no chance to clean up.
      process.kill(-creator.pid!, 'SIGKILL');
      // The reaper's own cleanup (`rm -rf <dir>`) names the directory while it works: wait until
      // nothing has named it for a while, not for one quiet instant.
      await eventually(
        () =>
          hostProcessesWith(`sleep ${marker}`).length === 0 && made.every((sandbox) => hostProcessesWith(sandbox.stateDir).length === 0),
        10_000,
        5,
      );
      expect(hostProcessesWith(`sleep ${marker}`)).toEqual([]);
      for (const sandbox of made) expect(hostProcessesWith(sandbox.stateDir)).toEqual([]);
      // What the dead launchers could not remove, the next create or cleanup() does.
      await createLocalSandboxProvider().cleanup();
      for (const sandbox of made) expect(leftovers(sandbox.id, join(sandbox.stateDir, '..'))).toEqual([]);
    },
    120_000,
  );
});
