/**
 * Local pause beyond the conformance suite: it is the cgroup freezer (the host sees the sandbox's
 * freezer frozen), the network helpers outside the cgroups stay up so that a tunnel connection
 * made while paused is answered after the resume, an exec timeout that runs out while paused
 * kills at the resume, and a paused sandbox terminates without leaving anything on the host.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider, type LocalSandbox } from '../../adapters/local/index.js';
import { probeLocalSystem } from '../../adapters/local/local-system.js';
import { sandboxCgroupDirs } from '../../adapters/local/local-cgroups.js';
import { SandboxPausedError, SandboxTimeoutError } from '../../src/kit/index.js';
import { hostProcessesWith } from '../host-resources.js';

const isRoot = process.getuid?.() === 0;
const stateDir = mkdtempSync(join(tmpdir(), 'sandport-pause-'));
const provider = createLocalSandboxProvider({ stateDir });
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether the sandbox's freezer says FROZEN (v1 freezer.state, v2 cgroup.events). */
async function hostSeesFrozen(sandbox: LocalSandbox): Promise<boolean> {
  const layout = (await probeLocalSystem()).cgroups!;
  const { freezerDir } = sandboxCgroupDirs(layout, sandbox.id);
  if (layout.version === 2) return /^frozen 1$/m.test(readFileSync(join(freezerDir, 'cgroup.events'), 'utf8'));
  return readFileSync(join(freezerDir, 'freezer.state'), 'utf8').trim() === 'FROZEN';
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!isRoot)('local pause (root: the cgroup freezer)', () => {
  it('pause freezes the sandbox cgroup and resume thaws it', async () => {
    const sandbox = await provider.create();
    try {
      expect(await hostSeesFrozen(sandbox)).toBe(false);
      await sandbox.pause();
      expect(await hostSeesFrozen(sandbox)).toBe(true);
      await sandbox.resume();
      expect(await hostSeesFrozen(sandbox)).toBe(false);
    } finally {
      await sandbox.terminate();
    }
  }, 60_000);

  it('a tunnel connection made while paused is held by the port bridge and answered after the resume', async () => {
    const sandbox = await provider.create({ ports: [8080], network: 'block' });
    try {
      const server = ['node', '-e', "require('http').createServer((q, r) => r.end('pong ' + q.url)).listen(8080, '127.0.0.1')"];
      const quoted = server.map((part) => `'${part.replaceAll("'", `'\\''`)}'`).join(' ');
      await sandbox.run(['/bin/sh', '-c', `(setsid ${quoted} > /dev/null 2>&1 &); exit 0`]);
      const tunnel = (await sandbox.tunnels())[8080]!;
      let ready = false;
      for (let attempt = 0; attempt < 100 && !ready; attempt++) {
        ready = await httpGet(`${tunnel.url}/ready`).then(
          (body) => body === 'pong /ready',
          () => false,
        );
        if (!ready) await sleep(100);
      }
      expect(ready).toBe(true);
      await sandbox.pause();
      await expect(sandbox.tunnels()).rejects.toSatisfy((error) => SandboxPausedError.isInstance(error));
      const answer = httpGet(`${tunnel.url}/during-pause`);
      const early = await Promise.race([
        answer.then(
          () => 'answered',
          () => 'failed',
        ),
        sleep(500).then(() => 'waiting'),
      ]);
      expect(early).toBe('waiting');
      await sandbox.resume();
      expect(await answer).toBe('pong /during-pause');
    } finally {
      await sandbox.terminate();
    }
  }, 60_000);

  it('an exec timeout that runs out while paused kills the command at the resume', async () => {
    const sandbox = await provider.create();
    try {
      const process = await sandbox.exec(['sleep', '600'], { timeoutMs: 300 });
      await sandbox.pause();
      const exit = process.wait().then(
        () => 'exited',
        (error: unknown) => error,
      );
      await sleep(800);
      const early = await Promise.race([exit.then(() => 'settled'), sleep(200).then(() => 'waiting')]);
      expect(early).toBe('waiting');
      await sandbox.resume();
      const error = await exit;
      expect(SandboxTimeoutError.isInstance(error), String(error)).toBe(true);
    } finally {
      await sandbox.terminate();
    }
  }, 60_000);

  it('a paused sandbox with commands and daemons running terminates without leaving anything on the host', async () => {
    const sandbox = await provider.create({ ports: [8081] });
    const marker = `pause-leftover-${sandbox.id}`;
    await sandbox.run(['/bin/sh', '-c', `(setsid sh -c 'sleep 600; echo ${marker}' > /dev/null 2>&1 &); exit 0`]);
    const running = await sandbox.exec(['/bin/sh', '-c', `sleep 600; echo ${marker}`]);
    expect(hostProcessesWith(marker).length).toBeGreaterThanOrEqual(2);
    await sandbox.pause();
    await sandbox.terminate();
    expect((await sandbox.wait()).reason).toBe('terminated');
    await expect(running.wait()).rejects.toThrow();
    // Nothing of it is left: no process (its daemons, its bridges, its bwrap), cgroup or state dir.
    expect(hostProcessesWith(marker)).toEqual([]);
    expect(hostProcessesWith(sandbox.stateDir)).toEqual([]);
    const layout = (await probeLocalSystem()).cgroups!;
    expect(sandboxCgroupDirs(layout, sandbox.id).dirs.filter((dir) => existsSync(dir))).toEqual([]);
    expect(existsSync(sandbox.stateDir)).toBe(false);
  }, 60_000);
});
