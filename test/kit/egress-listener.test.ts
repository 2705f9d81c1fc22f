/**
 * `listenInNamespace`: a listener made in another network namespace (one this test makes with
 * `unshare -n`) and handed to this process, where the egress proxy accepts on it. curl run in
 * that namespace is the client; the proxy reaches the test internet of `test/egress-internet.ts`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxEmitter, SandboxProviderError, egressProxyPort, listenInNamespace, startEgressProxy } from '../../src/kit/index.js';
import { type TestInternet, startTestInternet } from '../egress-internet.js';

const run = promisify(execFile);
const root = process.getuid?.() === 0;

/** Host processes still running the helper's script (it names `process.send` with the namespace). */
async function helpers(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes("process.send({ namespace: fs.readlinkSync('/proc/self/ns/net') }")) pids.push(Number(entry));
  }
  return pids;
}

/** This process's children whose command line is `cmdline` (NUL-separated, as in /proc). */
async function childrenRunning(cmdline: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (!status.includes(`\nPPid:\t${process.pid}\n`)) continue;
    if ((await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')) === cmdline) pids.push(Number(entry));
  }
  return pids;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

describe('listenInNamespace: an enter prefix that fails', () => {
  it('a prefix that cannot start, or exits without entering, is a SandboxProviderError', async () => {
    const missing = await listenInNamespace({ provider: 'test', enter: ['/nonexistent/enter'], port: 0 }).catch((error: unknown) => error);
    expect(SandboxProviderError.isInstance(missing), String(missing)).toBe(true);
    expect((missing as Error).message).toContain('could not start');
    const exits = await listenInNamespace({
      provider: 'test',
      enter: ['/bin/sh', '-c', 'echo "cannot enter" >&2; exit 3', 'sh'],
      port: 0,
    }).catch((error: unknown) => error);
    expect(SandboxProviderError.isInstance(exits), String(exits)).toBe(true);
    expect((exits as Error).message).toMatch(/exited \(3\).*cannot enter/);
  });

  it('an abort rejects with the signal’s reason and kills the helper', async () => {
    const controller = new AbortController();
    const pending = listenInNamespace({
      provider: 'test',
      // Stands in for an enter that hangs: the helper never starts.
      enter: ['/bin/sh', '-c', 'echo sandport-listener-test-hang >/dev/null; exec sleep 30', 'sh'],
      port: 0,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('caller gave up')), 50);
    await expect(pending).rejects.toThrow('caller gave up');
    expect(await childrenRunning('sleep\u000030\u0000')).toEqual([]);
  });
});

describe.skipIf(!root)('listenInNamespace into a network namespace of this test (needs root for unshare and nsenter)', () => {
  let internet: TestInternet;
  let holder: ChildProcess;
  let namespace: string;
  beforeAll(async () => {
    internet = await startTestInternet();
    // A network namespace with its loopback up, held by a sleep.
    holder = spawn('unshare', ['-n', '--', '/bin/sh', '-c', 'ip link set lo up && exec sleep 600'], { stdio: 'ignore' });
    const ready = await eventually(async () => (await readFile(`/proc/${holder.pid}/comm`, 'utf8').catch(() => '')) === 'sleep\n');
    if (!ready) throw new Error('the namespace holder did not start');
    namespace = await readlink(`/proc/${holder.pid}/ns/net`);
  });
  afterAll(async () => {
    holder?.kill('SIGKILL');
    await internet?.close();
  });
  const enter = () => ['nsenter', '-t', String(holder.pid), '-n', '--'];
  const curlInside = (url: string) =>
    run('nsenter', [...enter(), 'curl', '-sS', '--max-time', '10', '-x', `http://127.0.0.1:${egressProxyPort}`, url]).then(
      ({ stdout }) => ({ ok: true as const, stdout }),
      (error: { code?: number; stderr?: string }) => ({ ok: false as const, code: error.code, stderr: error.stderr ?? '' }),
    );

  it('the proxy accepts on the handed-over listener: the namespace reaches it on its loopback, and nothing once it closes', async () => {
    expect(namespace).not.toBe(await readlink('/proc/self/ns/net'));
    const handle = await listenInNamespace({ provider: 'test', enter: enter(), port: egressProxyPort, namespace });
    const proxy = await startEgressProxy({
      provider: 'test',
      sandboxId: 'listener',
      policy: { allowDomains: ['allowed.test'], allowCidrs: [] },
      listen: { handle },
      events: new SandboxEmitter(),
      network: internet,
    });
    try {
      expect(proxy.listen).toEqual({ host: '127.0.0.1', port: egressProxyPort });
      expect(await curlInside('http://allowed.test/')).toEqual({ ok: true, stdout: 'hello from 198.51.100.10' });
      const denied = await curlInside('http://denied.test/');
      expect(denied.ok && denied.stdout).toContain('denied.test is not in allowDomains');
      // The helper has handed over and exited: nothing of it runs on.
      expect(await eventually(async () => (await helpers()).length === 0)).toBe(true);
    } finally {
      await proxy.close();
    }
    const after = await curlInside('http://allowed.test/');
    expect(after.ok).toBe(false);
    expect(after).toMatchObject({ code: 7 });
  });

  it('a listener made in another namespace than expected is refused and closed', async () => {
    const refused = await listenInNamespace({ provider: 'test', enter: enter(), port: egressProxyPort, namespace: 'net:[1]' }).catch(
      (error: unknown) => error,
    );
    expect(SandboxProviderError.isInstance(refused), String(refused)).toBe(true);
    expect((refused as Error).message).toContain(`was made in ${namespace}, not net:[1]`);
    // Closed: the port inside is free for the next listener.
    const again = await listenInNamespace({ provider: 'test', enter: enter(), port: egressProxyPort, namespace });
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });
});
