/**
 * Real attacks on the local provider. Resource attacks run only after the test has read the
 * sandbox's cgroup limits back from the host, and each is bounded by a timeout, so a
 * regression cannot take the machine down.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider, type LocalSandbox } from '../../adapters/local/index.js';
import { SandboxCapabilityUnsupportedError, SandboxFileNotFoundError, SandboxInvalidArgumentError } from '../../src/index.js';
import { hostProcessesWith } from '../host-resources.js';
import { startCreator } from '../creator-process.js';

const isRoot = process.getuid?.() === 0;
const provider = createLocalSandboxProvider();
const sandboxes: LocalSandbox[] = [];
const create = async (options: Parameters<typeof provider.create>[0] = {}) => {
  const sandbox = await provider.create(options);
  sandboxes.push(sandbox);
  return sandbox;
};
const hostDir = mkdtempSync(join(tmpdir(), 'sandport-security-'));
const secretPath = join(hostDir, 'root-only-secret');

/** The host cgroup files of a sandbox, found by its id (proves the limit is really set). */
function cgroupFile(sandboxId: string, controller: string, file: string): string | undefined {
  const find = (dir: string, depth: number): string | undefined => {
    if (depth > 6) return undefined;
    const candidate = join(dir, 'sandport', sandboxId, file);
    if (existsSync(candidate)) return candidate;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory() && entry.name !== 'sandport') {
        const found = find(join(dir, entry.name), depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  };
  const base = join('/sys/fs/cgroup', controller);
  return existsSync(base) ? find(base, 0) : find('/sys/fs/cgroup', 0);
}

beforeAll(() => {
  writeFileSync(secretPath, 'host root secret\n');
  chmodSync(secretPath, 0o600);
});
afterAll(async () => {
  await Promise.all(sandboxes.map((sandbox) => sandbox.terminate()));
  rmSync(hostDir, { recursive: true, force: true });
});

if (!isRoot)
  console.warn(
    'skipping the local attack tests: they exercise the root-run configuration (uid mapping, cgroup limits); run the tests as root',
  );

describe.skipIf(!isRoot)('local provider under attack (running as root)', () => {
  it('is not host root: a root-only host file is unreadable even when bound in', async () => {
    const sandbox = await create({ network: 'block', volumes: { '/host': { source: hostDir, readOnly: true } } });
    expect((await sandbox.run(['id', '-u'])).stdout.trim()).toBe('0');
    const read = await sandbox.run(['cat', '/host/root-only-secret']);
    expect(read.exitCode).not.toBe(0);
    expect(read.stdout).not.toContain('secret');
    expect(read.stderr).toContain('Permission denied');
  });

  it('runs commands without capabilities and with no_new_privs', async () => {
    const sandbox = await create({ network: 'block' });
    const status = (await sandbox.run(['cat', '/proc/self/status'])).stdout;
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(status).toMatch(/^CapBnd:\s+0+$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect((await sandbox.run(['/bin/sh', '-c', 'mount -t tmpfs none /mnt 2>&1; echo rc=$?'])).stdout).not.toContain('rc=0');
  });

  it('hides host secrets from the host-view image', async () => {
    const sandbox = await create({ network: 'block' });
    const probe = await sandbox.run([
      '/bin/sh',
      '-c',
      'cat /etc/shadow /etc/gshadow 2>/dev/null | wc -c; ls -A /root | wc -l; ls /home 2>/dev/null | wc -l; ls -A /etc/ssh 2>/dev/null | wc -l',
    ]);
    expect(probe.stdout.split('\n').filter(Boolean)).toEqual(['0', '0', '0', '0']);
    expect((await sandbox.run(['ls', hostDir])).exitCode).not.toBe(0);
  });

  it('keeps every write in the sandbox layer, never on the host', async () => {
    const sandbox = await create({ network: 'block' });
    const marker = `escape-${Date.now()}`;
    const attempts = await sandbox.run([
      '/bin/sh',
      '-c',
      `for f in /usr/${marker} /etc/${marker} /usr/local/${marker} /opt/${marker}; do echo x > "$f" 2>/dev/null && echo "wrote $f"; done; ` +
        `echo x > /tmp/${marker} && echo x > /${marker} && echo x > /root/${marker} && echo layer-ok`,
    ]);
    expect(attempts.stdout.trim()).toBe('layer-ok');
    for (const path of [`/usr/${marker}`, `/etc/${marker}`, `/tmp/${marker}`, `/${marker}`, `/root/${marker}`, `/opt/${marker}`]) {
      expect(existsSync(path)).toBe(false);
    }
    expect(existsSync(join(sandbox.stateDir, 'layer', 'tmp', marker))).toBe(true);
  });

  it('read-only volumes stay read-only; read-write volumes are writable', async () => {
    const writable = mkdtempSync(join(tmpdir(), 'sandport-rw-'));
    chownSync(writable, provider.sandboxUid, provider.sandboxUid);
    try {
      const sandbox = await create({
        network: 'block',
        volumes: { '/ro': { source: hostDir, readOnly: true }, '/rw': { source: writable, readOnly: false } },
      });
      expect((await sandbox.run(['/bin/sh', '-c', 'echo x > /ro/new'])).exitCode).not.toBe(0);
      expect(existsSync(join(hostDir, 'new'))).toBe(false);
      expect((await sandbox.run(['/bin/sh', '-c', 'echo shared > /rw/new'])).exitCode).toBe(0);
      expect(readFileSync(join(writable, 'new'), 'utf8')).toBe('shared\n');
    } finally {
      rmSync(writable, { recursive: true, force: true });
    }
  });

  it('cannot see or signal host processes', async () => {
    const marker = `7${Math.floor(Math.random() * 1e6)}`;
    const victim = spawn('sleep', [marker], { stdio: 'ignore' });
    try {
      const sandbox = await create({ network: 'block' });
      const seen = await sandbox.run(['/bin/sh', '-c', 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "']);
      expect(seen.stdout).not.toContain(marker);
      const kill = await sandbox.run(['/bin/sh', '-c', `kill -9 ${victim.pid}; echo rc=$?`]);
      expect(kill.stdout).toContain('rc=1');
      expect(victim.exitCode).toBeNull();
      expect(() => process.kill(victim.pid!, 0)).not.toThrow();
    } finally {
      victim.kill('SIGKILL');
    }
  });

  describe('host loopback', () => {
    let server: Server;
    let port = 0;
    let connections = 0;
    beforeAll(async () => {
      server = createServer((socket) => {
        connections++;
        socket.end('host service\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it.each(['block', 'allow'] as const)("is unreachable with network '%s'", async (network) => {
      const sandbox = await create({ network });
      connections = 0;
      const probe = await sandbox.run([
        '/bin/sh',
        '-c',
        `for host in 127.0.0.1 10.0.2.2 localhost; do timeout 3 bash -c "exec 3<>/dev/tcp/$host/${port}" 2>/dev/null && echo "reached $host"; done; echo probed`,
      ]);
      expect(probe.stdout.trim()).toBe('probed');
      expect(connections).toBe(0);
    });
  });

  it('the files API cannot follow a symlink out to the host', async () => {
    const sandbox = await create({ network: 'block' });
    await sandbox.run(['ln', '-s', secretPath, '/workspace/to-host-secret']);
    await sandbox.run(['ln', '-s', '/etc/shadow', '/workspace/to-shadow']);
    await sandbox.run(['ln', '-s', join(hostDir, 'planted'), '/workspace/plant']);
    await expect(sandbox.files.read('/workspace/to-host-secret')).rejects.toSatisfy((error) => SandboxFileNotFoundError.isInstance(error));
    expect((await sandbox.files.read('/workspace/to-shadow')).byteLength).toBe(0);
    await sandbox.files.write('/workspace/plant', 'planted through a symlink').catch(() => undefined);
    expect(existsSync(join(hostDir, 'planted'))).toBe(false);
    await sandbox.files.write(`${hostDir}/direct`, 'absolute host path').catch(() => undefined);
    expect(existsSync(join(hostDir, 'direct'))).toBe(false);
  });

  it('a memory hog is killed and reported; the sandbox survives', async () => {
    const sandbox = await create({ network: 'block', memoryMiB: 64 });
    const limitFile = cgroupFile(sandbox.id, 'memory', 'memory.limit_in_bytes') ?? cgroupFile(sandbox.id, '', 'memory.max');
    expect(limitFile).toBeDefined();
    expect(Number(readFileSync(limitFile!, 'utf8'))).toBe(64 * 1024 * 1024);
    const hog = await sandbox.exec(['python3', '-c', 'a = bytearray(512 * 1024 * 1024); print("survived")'], { timeoutMs: 30_000 });
    void hog.stdout.cancel();
    void hog.stderr.cancel();
    const exit = await hog.wait();
    expect(exit.exitCode).toBe(137);
    expect(exit.signal).toBe('SIGKILL');
    expect(exit.oomKilled).toBe(true);
    expect((await sandbox.run(['echo', 'still here'])).stdout).toBe('still here\n');
  });

  it('a fork bomb is contained and the host stays responsive', async () => {
    const sandbox = await create({ network: 'block', pidsLimit: 32 });
    const pidsFile = cgroupFile(sandbox.id, 'pids', 'pids.max');
    expect(pidsFile).toBeDefined();
    expect(readFileSync(pidsFile!, 'utf8').trim()).toBe('32');
    const name = `bomb${Math.floor(Math.random() * 1e9)}`;
    const bomb = await sandbox.exec(['/bin/sh', '-c', `${name}() { ${name} | ${name} & }; ${name}; sleep 5`], { timeoutMs: 4_000 });
    void bomb.stdout.cancel();
    void bomb.stderr.cancel();
    const started = Date.now();
    const host = spawnSync('true');
    expect(host.status).toBe(0);
    expect(Number(readFileSync(pidsFile!.replace('pids.max', 'pids.current'), 'utf8'))).toBeLessThanOrEqual(32);
    await bomb.wait().catch(() => undefined);
    expect(Date.now() - started).toBeLessThan(60_000);
    await sandbox.terminate();
    expect(hostProcessesWith(name)).toEqual([]);
  });

  it('nothing outlives terminate: processes, cgroups, directory', async () => {
    const sandbox = await create({ ports: [8080] });
    const marker = `8${Math.floor(Math.random() * 1e6)}`;
    await sandbox.run(['/bin/sh', '-c', `(setsid sleep ${marker} >/dev/null 2>&1 &); (nohup sleep ${marker} >/dev/null 2>&1 &); exit 0`]);
    // A daemon in the middle of its execve shows an empty command line for a moment.
    for (let tries = 0; tries < 50 && hostProcessesWith(`sleep ${marker}`).length < 2; tries++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hostProcessesWith(`sleep ${marker}`).length).toBe(2);
    const pidsFile = cgroupFile(sandbox.id, 'pids', 'pids.max');
    await sandbox.terminate();
    expect(hostProcessesWith(`sleep ${marker}`)).toEqual([]);
    expect(hostProcessesWith(sandbox.stateDir)).toEqual([]);
    expect(existsSync(sandbox.stateDir)).toBe(false);
    if (pidsFile) expect(existsSync(pidsFile)).toBe(false);
  });

  it.each([
    ['as root', []],
    ['unprivileged', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--']],
  ])('nothing outlives a creating process that is SIGKILLed (%s)', async (_mode, prefix) => {
    const marker = `9${Math.floor(Math.random() * 1e6)}`;
    const { creator, line } = await startCreator([join(import.meta.dirname, 'fixtures', 'creator.ts'), marker], {
      prefix,
      env: { ...process.env, HOME: '/tmp', TMPDIR: '/tmp' },
    });
    let made: Array<{ id: string; stateDir: string }> = [];
    try {
      made = JSON.parse(line) as Array<{ id: string; stateDir: string }>;
      expect(made.length).toBe(2);
      expect(hostProcessesWith(`sleep ${marker}`).length).toBe(2);
    } finally {
      creator.kill('SIGKILL');
    }
    const deadline = Date.now() + 15_000;
    while (
      Date.now() < deadline &&
      (hostProcessesWith(`sleep ${marker}`).length > 0 || made.some((sandbox) => existsSync(sandbox.stateDir)))
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(hostProcessesWith(`sleep ${marker}`)).toEqual([]);
    for (const sandbox of made) {
      expect(existsSync(sandbox.stateDir)).toBe(false);
      expect(hostProcessesWith(sandbox.stateDir)).toEqual([]);
      expect(cgroupFile(sandbox.id, 'pids', 'pids.max')).toBeUndefined();
    }
  });
});

describe('local provider refuses what it cannot honour', () => {
  it('rejects bad volumes, images and unsupported security settings with typed errors', async () => {
    const invalid = [
      { volumes: { '/data': 'relative/dir' } },
      { volumes: { '/data': '/does/not/exist/anywhere' } },
      { image: 'relative/rootfs' },
      { image: { type: 'snapshot', provider: 'local', id: 'snap-0000000000000000' } },
      { image: { type: 'snapshot', provider: 'modal', id: 'im-123' } },
    ];
    for (const options of invalid) {
      await expect(provider.create(options as never)).rejects.toSatisfy((error) => SandboxInvalidArgumentError.isInstance(error));
    }
    if (isRoot) {
      const notWritable = mkdtempSync(join(tmpdir(), 'sandport-ro-'));
      await expect(provider.create({ network: 'block', volumes: { '/data': notWritable } })).rejects.toSatisfy(
        (error) => SandboxInvalidArgumentError.isInstance(error) && error.argument === 'volumes./data',
      );
      rmSync(notWritable, { recursive: true, force: true });
    }
    // (Network allowlists are enforced now: test/security/egress-local.test.ts attacks them.)
    for (const options of [{ gpu: 'A100' }, { image: { base: 'debian', commands: [] } }]) {
      await expect(provider.create(options as never)).rejects.toSatisfy((error) => SandboxCapabilityUnsupportedError.isInstance(error));
    }
  });
});
