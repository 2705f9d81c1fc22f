/**
 * Real attacks on the Docker provider. Resource attacks run only after the test has read the
 * limits back from the engine, and each is bounded by a timeout.
 */
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider, type DockerSandbox } from '../../adapters/docker/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { startCreator } from '../creator-process.js';

const available = dockerAvailable();
if (!available) console.warn('skipping the docker attack tests: no engine answers or the base image is missing');

describe.skipIf(!available)('docker provider under attack', () => {
  const provider = createDockerSandboxProvider({ defaultImage: baseImage });
  const sandboxes: DockerSandbox[] = [];
  const create = async (options: Parameters<typeof provider.create>[0] = {}) => {
    const sandbox = await provider.create({ image: baseImage, ...options });
    sandboxes.push(sandbox);
    return sandbox;
  };
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
  });

  describe('network', () => {
    let server: Server;
    let port = 0;
    let connections = 0;
    beforeAll(async () => {
      server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const hosts = () => [
      '127.0.0.1',
      '172.17.0.1',
      ...Object.values(networkInterfaces())
        .flat()
        .filter((entry) => entry?.family === 'IPv4')
        .map((entry) => entry!.address),
    ];
    const probe = (sandbox: DockerSandbox) =>
      sandbox.run([
        '/bin/sh',
        '-c',
        `for host in "$@"; do timeout 3 bash -c "exec 3<>/dev/tcp/$host/${port}" 2>/dev/null && echo "reached $host"; done; echo probed`,
        'sh',
        ...hosts(),
      ]);

    it("network 'block' reaches no port the host opened, on any address", async () => {
      const sandbox = await create({ network: 'block' });
      expect((await sandbox.native.inspect()).HostConfig.NetworkMode).toBe('none');
      connections = 0;
      expect((await probe(sandbox)).stdout.trim()).toBe('probed');
      expect(connections).toBe(0);
    });

    it('the default network does not reach the host loopback', async () => {
      const loopbackOnly = createServer((socket) => socket.destroy());
      let loopbackConnections = 0;
      loopbackOnly.on('connection', () => loopbackConnections++);
      await new Promise<void>((resolve) => loopbackOnly.listen(0, '127.0.0.1', resolve));
      const loopbackPort = (loopbackOnly.address() as { port: number }).port;
      try {
        const sandbox = await create();
        const result = await sandbox.run([
          '/bin/sh',
          '-c',
          `for host in 127.0.0.1 172.17.0.1 localhost; do timeout 3 bash -c "exec 3<>/dev/tcp/$host/${loopbackPort}" 2>/dev/null && echo "reached $host"; done; echo probed`,
        ]);
        expect(result.stdout.trim()).toBe('probed');
        expect(loopbackConnections).toBe(0);
      } finally {
        loopbackOnly.close();
      }
    });
  });

  it('is not privileged: no dangerous capabilities, no new privileges, no mounts', async () => {
    const sandbox = await create({ network: 'block' });
    const info = await sandbox.native.inspect();
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.HostConfig.CapDrop).toContain('ALL');
    expect(info.Mounts).toEqual([]);
    const status = (await sandbox.run(['cat', '/proc/self/status'])).stdout;
    const effective = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)![1]}`);
    const sysAdmin = 1n << 21n;
    const netRaw = 1n << 13n;
    const sysPtrace = 1n << 19n;
    expect(effective & (sysAdmin | netRaw | sysPtrace)).toBe(0n);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect((await sandbox.run(['/bin/sh', '-c', 'mount -t tmpfs none /mnt 2>&1; echo rc=$?'])).stdout).not.toContain('rc=0');
  });

  it('mounts only what was asked, read-only when asked', async () => {
    const hostDir = mkdtempSync(join(tmpdir(), 'sandport-docker-ro-'));
    writeFileSync(join(hostDir, 'visible.txt'), 'from the host\n');
    try {
      const sandbox = await create({ network: 'block', volumes: { '/data': { source: hostDir, readOnly: true } } });
      const info = await sandbox.native.inspect();
      expect(info.Mounts.map((mount) => [mount.Source, mount.Destination, mount.RW])).toEqual([[hostDir, '/data', false]]);
      expect((await sandbox.run(['cat', '/data/visible.txt'])).stdout).toBe('from the host\n');
      expect((await sandbox.run(['/bin/sh', '-c', 'echo x > /data/new'])).exitCode).not.toBe(0);
      expect(existsSync(join(hostDir, 'new'))).toBe(false);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('a memory hog is killed under the limit the engine reports', async () => {
    const sandbox = await create({ network: 'block', memoryMiB: 64 });
    expect((await sandbox.native.inspect()).HostConfig.Memory).toBe(64 * 1024 * 1024);
    const hog = await sandbox.run(['/bin/sh', '-c', 'head -c 400m /dev/zero | tail > /dev/null'], { timeoutMs: 60_000 });
    expect(hog.exitCode).not.toBe(0);
    expect((await sandbox.run(['echo', 'alive'])).stdout).toBe('alive\n');
  });

  it('a fork bomb stops at the pids limit the engine reports', async () => {
    const sandbox = await create({ network: 'block', pidsLimit: 32 });
    expect((await sandbox.native.inspect()).HostConfig.PidsLimit).toBe(32);
    const bomb = await sandbox.exec(['/bin/sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 5'], { timeoutMs: 4_000 });
    void bomb.stdout.cancel();
    void bomb.stderr.cancel();
    await bomb.wait().catch(() => undefined);
    const count = await sandbox.run(['/bin/sh', '-c', 'ls -d /proc/[0-9]* | wc -l']).catch(() => undefined);
    if (count) expect(Number(count.stdout.trim())).toBeLessThanOrEqual(32);
    await sandbox.terminate();
  });

  it('terminate leaves no container', async () => {
    const sandbox = await create({ network: 'block' });
    const id = sandbox.id;
    await sandbox.terminate();
    const left = await provider.docker.listContainers({ all: true, filters: { id: [id] } });
    expect(left).toEqual([]);
  });

  it('the lifetime holds when the creating process is SIGKILLed', async () => {
    const { creator, line: id } = await startCreator([join(import.meta.dirname, 'fixtures', 'docker-creator.ts'), baseImage]);
    creator.kill('SIGKILL');
    expect((await provider.fromId(id)).id).toBe(id);
    const deadline = Date.now() + 20_000;
    let left = await provider.docker.listContainers({ all: true, filters: { id: [id] } });
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      left = await provider.docker.listContainers({ all: true, filters: { id: [id] } });
    }
    expect(left).toEqual([]);
  }, 60_000);
});
