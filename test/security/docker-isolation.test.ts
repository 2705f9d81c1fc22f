/**
 * Attacks between Docker sandboxes and against what one sandbox keeps from others: reaching a
 * neighbour's ports, reading secrets through the engine's config or a snapshot.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider, type DockerSandbox } from '../../adapters/docker/index.js';
import type { SandboxSnapshotRef } from '../../src/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';

const available = dockerAvailable();
if (!available)
  console.warn(
    `skipping the docker isolation attacks: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`,
  );

/** A TCP listener in perl (perl-base is in every Debian image, minbase included). */
const listener = (port: number) => [
  '/bin/sh',
  '-c',
  `(setsid perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => ${port}, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c "secret-service\\n"; close $c }' > /dev/null 2>&1 &); exit 0`,
];
const connect = (host: string, port: number) => [
  '/bin/sh',
  '-c',
  `timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1; head -c 14 <&3' ${host} ${port} 2>/dev/null; echo " rc=$?"`,
];

describe.skipIf(!available)('docker sandboxes under attack from each other', () => {
  const provider = createDockerSandboxProvider({ defaultImage: baseImage });
  const sandboxes: DockerSandbox[] = [];
  const snapshots: SandboxSnapshotRef[] = [];
  const create = async (options: Parameters<typeof provider.create>[0] = {}) => {
    const sandbox = await provider.create(options);
    sandboxes.push(sandbox);
    return sandbox;
  };
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    await Promise.all(snapshots.map((snapshot) => provider.deleteSnapshot(snapshot).catch(() => undefined)));
  }, 60_000);

  it("a sandbox cannot reach a neighbour's ports on the default network", async () => {
    const victim = await create();
    const attacker = await create();
    await victim.run(listener(7070));
    // Positive control: the service answers inside the victim, so a refusal below means isolation.
    let answered = '';
    for (let attempt = 0; attempt < 50 && !answered.includes('secret-service'); attempt++) {
      answered = (await victim.run(connect('127.0.0.1', 7070))).stdout;
      if (!answered.includes('secret-service')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(answered).toContain('secret-service');
    const info = await victim.native.inspect();
    const addresses = Object.values(info.NetworkSettings.Networks)
      .map((network) => network.IPAddress)
      .filter(Boolean);
    expect(addresses.length).toBeGreaterThan(0);
    for (const address of addresses) {
      const attempt = await attacker.run(connect(address, 7070));
      expect(attempt.stdout).not.toContain('secret-service');
    }
  });

  it('secrets are not readable from the engine config, nor inherited through a snapshot', async () => {
    const secret = `token-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const owner = await create({ network: 'block', secrets: { API_TOKEN: secret } });
    expect((await owner.run(['/bin/sh', '-c', 'printf %s "$API_TOKEN"'])).stdout).toBe(secret);
    expect(JSON.stringify(await owner.native.inspect())).not.toContain(secret);
    const snapshot = await owner.snapshot();
    snapshots.push(snapshot);
    expect(JSON.stringify(await provider.docker.getImage(snapshot.id).inspect())).not.toContain(secret);
    const heir = await create({ network: 'block', image: snapshot });
    const search = await heir.run([
      '/bin/sh',
      '-c',
      `env; cat /.sandport/* 2>/dev/null; grep -rl ${secret} /etc /root /workspace /tmp 2>/dev/null; true`,
    ]);
    expect(search.stdout).not.toContain(secret);
  });
});
