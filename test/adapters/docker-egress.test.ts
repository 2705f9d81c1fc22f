/**
 * Network allowlists on the Docker provider, on the real engine: the container has no network,
 * its 127.0.0.1:3128 is bridged to an egress proxy in this process, and the proxy's "internet"
 * is the test internet (names resolving to documentation addresses whose dials land on servers
 * this file opened on loopback). curl inside the sandbox is the client.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCreator } from '../creator-process.js';
import {
  createDockerSandboxProvider,
  planDockerCreate,
  type DockerSandbox,
  type DockerSandboxProvider,
} from '../../adapters/docker/index.js';
import { createSandboxOptionsSchema, egressProxyEnv } from '../../src/kit/index.js';
import { SandboxCapabilityUnsupportedError, SandboxProviderError, type CreateSandboxOptions, type ExecResult } from '../../src/index.js';
import type { EgressEvent } from '../../src/spec/events.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { startTestInternet, testInternetNames, type TestInternet } from '../egress-internet.js';

const available = dockerAvailable();
if (!available)
  console.warn(`skipping the docker egress tests: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`);
const root = process.getuid?.() === 0;
if (available && !root) console.warn('skipping the docker egress tests of the host forwarder: they need root (nsenter into the container)');

const allowed = testInternetNames['allowed.test'];

/** curl inside the sandbox, bounded; the last line of stdout is the HTTP status (000 when none). */
function curl(sandbox: DockerSandbox, args: readonly string[]): Promise<ExecResult> {
  return sandbox.run(['curl', '-sS', '--connect-timeout', '10', '--max-time', '20', '-w', '\n%{http_code}', ...args]);
}
const statusOf = (result: ExecResult) => result.stdout.slice(result.stdout.lastIndexOf('\n') + 1);
const bodyOf = (result: ExecResult) => result.stdout.slice(0, Math.max(result.stdout.lastIndexOf('\n'), 0));

/** The host directory holding the sandbox's proxy socket, read from its bind mount. */
async function egressDirectoryOf(sandbox: DockerSandbox): Promise<string> {
  const info = await sandbox.native.inspect();
  const mount = info.Mounts.find((candidate) => candidate.Destination === '/run/sandport-egress');
  if (!mount?.Source) throw new Error(`sandbox ${sandbox.id} has no egress mount`);
  return mount.Source;
}

/** Host processes whose command line names `text` (the forwarder names the socket's directory). */
async function processesNaming(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!available)('docker network allowlists', () => {
  let internet: TestInternet;
  let provider: DockerSandboxProvider;
  const sandboxes: DockerSandbox[] = [];
  const events: EgressEvent[] = [];
  const create = async (options: CreateSandboxOptions) => {
    const sandbox = await provider.create({ timeoutMs: 120_000, ...options });
    sandboxes.push(sandbox);
    return sandbox;
  };
  beforeAll(async () => {
    internet = await startTestInternet();
    provider = createDockerSandboxProvider({ defaultImage: baseImage, egressNetwork: internet });
    provider.events.on('egress', (event) => events.push(event));
    // Loads dockerode, so that provider.docker answers in any test run alone.
    await provider.list();
  });
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    await internet?.close();
  }, 60_000);

  it.skipIf(!root)('an allowed name is reached through the proxy, another gets 403, and both are egress events', async () => {
    const sandbox = await create({ network: { allowDomains: ['allowed.test'] } });
    expect(sandbox.warnings).toContainEqual(expect.objectContaining({ type: 'unsupported-setting', setting: 'network' }));
    const reached = await curl(sandbox, ['http://allowed.test/']);
    expect(statusOf(reached), reached.stderr).toBe('200');
    expect(bodyOf(reached)).toBe(`hello from ${allowed}`);
    const refused = await curl(sandbox, ['-i', 'http://denied.test/']);
    expect(statusOf(refused)).toBe('403');
    expect(refused.stdout.toLowerCase()).toContain('x-sandport-egress: denied');
    // HTTPS goes through CONNECT, over the same bridge.
    const tls = await curl(sandbox, ['-k', 'https://allowed.test/']);
    expect(statusOf(tls), tls.stderr).toBe('200');
    const mine = () => events.filter((event) => event.sandboxId === sandbox.id);
    expect(await eventually(() => mine().filter((event) => event.decision === 'allowed').length >= 2)).toBe(true);
    const denied = mine().find((event) => event.decision === 'denied');
    expect(denied).toMatchObject({ provider: 'docker', host: 'denied.test', port: 80, protocol: 'http', bytesSent: 0 });
    const plain = mine().find((event) => event.decision === 'allowed' && event.protocol === 'http');
    expect(plain).toMatchObject({ host: 'allowed.test', port: 80, address: allowed });
    expect(plain!.bytesReceived).toBeGreaterThan(0);
    expect(mine().find((event) => event.protocol === 'connect')).toMatchObject({ decision: 'allowed', host: 'allowed.test', port: 443 });
  });

  it.skipIf(!root)('a program that ignores the proxy reaches nothing, and the sandbox has no DNS and no route', async () => {
    const sandbox = await create({ network: { allowDomains: ['allowed.test'], allowCidrs: [`${allowed}/32`] } });
    const before = internet.dialed.length;
    const direct = await curl(sandbox, ['--noproxy', '*', `http://${allowed}/`]);
    expect(direct.exitCode, direct.stdout).not.toBe(0);
    const byName = await curl(sandbox, ['--noproxy', '*', 'http://allowed.test/']);
    expect(byName.exitCode).not.toBe(0);
    const resolved = await sandbox.run(['/bin/sh', '-c', 'getent hosts allowed.test; echo rc=$?']);
    expect(resolved.stdout.trim()).toMatch(/^rc=[1-9]/);
    // Only the loopback interface, and no route at all: nothing but the bridge leaves.
    const devices = await sandbox.run(['/bin/sh', '-c', "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
    expect(devices.stdout.trim()).toBe('lo');
    const routes = await sandbox.run([
      '/bin/sh',
      '-c',
      'tail -n +2 /proc/net/route; tail -n +1 /proc/net/ipv6_route 2>/dev/null | grep -v " lo$" || true',
    ]);
    expect(routes.stdout.trim()).toBe('');
    expect(internet.dialed.length, 'nothing was dialled for the direct attempts').toBe(before);
    // The same sandbox through the proxy: the allowlist itself works.
    expect(statusOf(await curl(sandbox, [`http://${allowed}/`]))).toBe('200');
  });

  it.skipIf(!root)(
    'the bridge is socat on the host in the container’s network namespace, and nothing of it is left after terminate',
    async () => {
      const sandbox = await provider.create({ network: { allowDomains: ['allowed.test'] } });
      const directory = await egressDirectoryOf(sandbox);
      const forwarders = await processesNaming(directory);
      expect(forwarders.length, 'one socat forwarder').toBeGreaterThan(0);
      const pid = (await sandbox.native.inspect()).State.Pid;
      const { readlink } = await import('node:fs/promises');
      for (const forwarder of forwarders) {
        expect(await readlink(`/proc/${forwarder}/ns/net`)).toBe(await readlink(`/proc/${pid}/ns/net`));
        expect(await readFile(`/proc/${forwarder}/comm`, 'utf8')).toBe('socat\n');
      }
      expect(existsSync(join(directory, 'proxy.sock'))).toBe(true);
      // Nothing of the forwarder runs inside the container.
      const inside = await sandbox.run(['/bin/sh', '-c', 'cat /proc/[0-9]*/comm']);
      expect(inside.stdout).not.toMatch(/socat|node|python/);
      await sandbox.terminate();
      expect(await processesNaming(directory)).toEqual([]);
      expect(existsSync(directory)).toBe(false);
    },
  );

  it.skipIf(!root)(
    'a sandbox opening many connections gets a bounded number of forwarder processes on the host',
    async () => {
      const sandbox = await create({ network: { allowDomains: ['allowed.test'] } });
      const directory = await egressDirectoryOf(sandbox);
      // 300 held connections: 256 get a forwarder process, the rest wait in the listen backlog
      // (so that every connect completes and the shell does not hang).
      const holder = await sandbox.exec([
        'bash',
        '-c',
        'for i in $(seq 300); do exec {fd}<>/dev/tcp/127.0.0.1/3128 || exit 1; done; echo opened; sleep 120',
      ]);
      const reader = holder.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe('opened\n');
      // The listener plus one process per accepted connection, never one per connection asked for.
      expect(await eventually(async () => (await processesNaming(directory)).length === 257)).toBe(true);
      expect((await processesNaming(directory)).length).toBe(257);
      await holder.kill();
      reader.releaseLock();
      await sandbox.terminate();
      expect(await processesNaming(directory)).toEqual([]);
    },
    60_000,
  );

  it.skipIf(!root)('the bridge survives pause and resume, and updateNetwork works while paused', async () => {
    const sandbox = await create({ network: { allowDomains: ['allowed.test'] } });
    expect(statusOf(await curl(sandbox, ['http://allowed.test/']))).toBe('200');
    await sandbox.pause();
    await sandbox.updateNetwork({ allowDomains: ['denied.test'] });
    await sandbox.resume();
    expect(statusOf(await curl(sandbox, ['http://denied.test/']))).toBe('200');
    expect(statusOf(await curl(sandbox, ['http://allowed.test/']))).toBe('403');
  });

  it.skipIf(!root)(
    'updateNetwork: allowlist to allowlist and to block; allow, and sandboxes created without an allowlist, are refused',
    async () => {
      const sandbox = await create({ network: { allowDomains: ['allowed.test'] } });
      await sandbox.updateNetwork({ allowCidrs: [`${testInternetNames['denied.test']}/32`] });
      // By address now: the name is no longer listed, its address is.
      expect(statusOf(await curl(sandbox, ['http://denied.test/']))).toBe('200');
      expect(statusOf(await curl(sandbox, ['http://allowed.test/']))).toBe('403');
      await sandbox.updateNetwork('block');
      expect(statusOf(await curl(sandbox, ['http://denied.test/']))).toBe('403');
      const toAllow = await sandbox.updateNetwork('allow').catch((error: unknown) => error);
      expect(SandboxCapabilityUnsupportedError.isInstance(toAllow)).toBe(true);
      expect((toAllow as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
      expect(statusOf(await curl(sandbox, ['http://denied.test/'])), 'the refused update changed nothing').toBe('403');

      const blocked = await create({ network: 'block' });
      const fromBlock = await blocked.updateNetwork({ allowDomains: ['allowed.test'] }).catch((error: unknown) => error);
      expect(SandboxCapabilityUnsupportedError.isInstance(fromBlock)).toBe(true);
      expect((fromBlock as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
      expect((fromBlock as Error).message).toContain('"block"');
      await sandbox.terminate();
      await expect(sandbox.updateNetwork({ allowDomains: [] })).rejects.toMatchObject({ code: 'sandbox_not_found' });
    },
  );

  it.skipIf(!root)(
    'the proxy variables win over the create env’s (with a warning), and an exec’s own env wins for its command',
    async () => {
      const sandbox = await create({
        network: { allowDomains: ['allowed.test'] },
        env: { HTTP_PROXY: 'http://elsewhere.invalid:1', https_proxy: 'http://elsewhere.invalid:1', KEEP: 'kept' },
      });
      expect(sandbox.warnings).toContainEqual(expect.objectContaining({ type: 'unsupported-setting', setting: 'env.HTTP_PROXY' }));
      expect(sandbox.warnings).toContainEqual(expect.objectContaining({ type: 'unsupported-setting', setting: 'env.https_proxy' }));
      const env = await sandbox.run(['/bin/sh', '-c', 'echo "$HTTP_PROXY $https_proxy $ALL_PROXY $NO_PROXY $KEEP"']);
      expect(env.stdout.trim()).toBe('http://127.0.0.1:3128 http://127.0.0.1:3128 socks5h://127.0.0.1:3128 localhost,127.0.0.1,::1 kept');
      const mine = await sandbox.run(['/bin/sh', '-c', 'echo "$http_proxy"'], { env: { http_proxy: 'http://mine.invalid:2' } });
      expect(mine.stdout.trim()).toBe('http://mine.invalid:2');
      expect(statusOf(await curl(sandbox, ['http://allowed.test/']))).toBe('200');
    },
  );

  it.skipIf(!root)('a snapshot of an allowlisted sandbox does not carry its proxy variables into sandboxes made from it', async () => {
    const sandbox = await create({ network: { allowDomains: ['allowed.test'] }, env: { KEEP: 'kept' } });
    const snapshot = await sandbox.snapshot();
    try {
      const child = await create({ image: snapshot, network: 'block' });
      const env = await child.run(['/bin/sh', '-c', 'env | grep -i _proxy; echo "KEEP=$KEEP"']);
      expect(env.stdout.trim()).toBe('KEEP=kept');
      await child.terminate();
    } finally {
      await provider.deleteSnapshot(snapshot);
    }
  });

  it.skipIf(!root)('a container restarted behind the provider’s back ends the sandbox, and its bridge and proxy with it', async () => {
    const sandbox = await create({ network: { allowDomains: ['allowed.test'] } });
    const directory = await egressDirectoryOf(sandbox);
    expect(await processesNaming(directory)).not.toEqual([]);
    // The restarted container has a new network namespace, which the old bridge does not reach.
    await provider.docker.getContainer(sandbox.native.id).restart({ t: 1 });
    expect(await sandbox.wait({ signal: AbortSignal.timeout(30_000) })).toEqual({ state: 'terminated', reason: 'crashed' });
    expect(await processesNaming(directory)).toEqual([]);
    expect(existsSync(directory)).toBe(false);
  });

  it('with no host forwarder, node or python3 in the image forwards from inside the container', async () => {
    // The conformance suite's image (python3 on the base), built once and cached by content.
    const image = {
      base: baseImage,
      commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
    };
    await (await create({ image, network: 'block' })).terminate();
    const path = process.env.PATH;
    // No setpriv, nsenter or socat on this PATH: the host forwarder is out.
    process.env.PATH = '/nonexistent';
    let sandbox: DockerSandbox;
    try {
      sandbox = await create({ image, network: { allowDomains: ['allowed.test'] } });
    } finally {
      process.env.PATH = path;
    }
    const directory = await egressDirectoryOf(sandbox);
    expect(await processesNaming(directory), 'no host forwarder').toEqual([]);
    const inside = await sandbox.run(['/bin/sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
    expect(inside.stdout).toContain('/run/sandport-egress/proxy.sock');
    const reached = await curl(sandbox, ['http://allowed.test/']);
    expect(statusOf(reached), reached.stderr).toBe('200');
    expect(statusOf(await curl(sandbox, ['http://denied.test/']))).toBe('403');
    // The socket's directory is read-only inside: the sandbox cannot replace the socket.
    const replaced = await sandbox.run(['/bin/sh', '-c', 'rm -f /run/sandport-egress/proxy.sock || exit 9; touch /run/sandport-egress/x']);
    expect(replaced.exitCode).not.toBe(0);
    expect(existsSync(join(directory, 'proxy.sock'))).toBe(true);
    await sandbox.terminate();
    expect(existsSync(directory)).toBe(false);
  }, 600_000);

  it.skipIf(!root)(
    'a host socat that fails to start leaves the in-container forwarder to try, and is the error when there is none',
    async () => {
      const tools = await mkdtemp(join(tmpdir(), 'sandport-test-tools-'));
      try {
        for (const tool of ['setpriv', 'nsenter'])
          await symlink(
            execFileSync('/bin/sh', ['-c', `command -v ${tool}`])
              .toString()
              .trim(),
            join(tools, tool),
          );
        await writeFile(join(tools, 'socat'), '#!/bin/sh\necho "socat: this one refuses" >&2\nexit 1\n', { mode: 0o755 });
        const image = {
          base: baseImage,
          commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
        };
        await (await create({ image, network: 'block' })).terminate();
        const path = process.env.PATH;
        process.env.PATH = tools;
        let withPython: DockerSandbox;
        let without: unknown;
        try {
          withPython = await create({ image, network: { allowDomains: ['allowed.test'] } });
          without = await provider.create({ network: { allowDomains: ['allowed.test'] } }).catch((error: unknown) => error);
        } finally {
          process.env.PATH = path;
        }
        expect(statusOf(await curl(withPython, ['http://allowed.test/']))).toBe('200');
        expect(SandboxProviderError.isInstance(without), String(without)).toBe(true);
        expect((without as Error).message).toContain('socat: this one refuses');
      } finally {
        await rm(tools, { recursive: true, force: true });
      }
    },
    600_000,
  );

  it.skipIf(!root)(
    'a create aborted at any point leaves no proxy directory, forwarder or container behind',
    async () => {
      const prefix = `sandport-egress-${process.pid}-`;
      const directories = async () => (await readdir(tmpdir())).filter((entry) => entry.startsWith(prefix)).sort();
      const containers = async () =>
        (await provider.docker.listContainers({ all: true, filters: { label: ['dev.sandport.network=allowlist'] } }))
          .map((c) => c.Id)
          .sort();
      const before = { directories: await directories(), forwarders: await processesNaming(prefix), containers: await containers() };
      // Aborts at different points of the create: some before the container, some during the bridge, some after.
      for (const delayMs of [0, 20, 60, 120, 180, 250, 320, 400, 600]) {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(new Error('caller gave up')), delayMs);
        const outcome = await provider
          .create({ network: { allowDomains: ['allowed.test'] }, signal: controller.signal })
          .catch((error: unknown) => error);
        clearTimeout(timer);
        if (outcome instanceof Error) expect(outcome.message).toBe('caller gave up');
        else await (outcome as DockerSandbox).terminate();
      }
      expect(await eventually(async () => (await directories()).join() === before.directories.join())).toBe(true);
      expect(await eventually(async () => (await processesNaming(prefix)).join() === before.forwarders.join())).toBe(true);
      expect(await eventually(async () => (await containers()).join() === before.containers.join())).toBe(true);
    },
    120_000,
  );

  it('an engine that is not on this host cannot bind-mount the proxy socket: refused before any engine call', async () => {
    const remote = createDockerSandboxProvider({
      docker: { modem: { host: 'engine.invalid', port: 2375 } } as unknown as DockerSandboxProvider['docker'],
    });
    const error = await remote.create({ network: { allowDomains: ['allowed.test'] } }).catch((caught: unknown) => caught);
    expect(SandboxCapabilityUnsupportedError.isInstance(error), String(error)).toBe(true);
    expect((error as SandboxCapabilityUnsupportedError).capability).toBe('network.allowDomains');
    expect((error as Error).message).toMatch(/^network: /);
  });

  it('without host tools and without node or python3 in the image, the create is refused naming network, leaving nothing', async () => {
    const path = process.env.PATH;
    // No setpriv, nsenter or socat on this PATH: the host forwarder is out, and the base image has neither node nor python3.
    process.env.PATH = '/nonexistent';
    // A name of its own: other test files create allowlisted containers at the same time.
    const name = `egress-refused-${process.pid}-${Date.now()}`;
    let error: unknown;
    try {
      error = await provider.create({ name, network: { allowCidrs: [`${allowed}/32`] } }).catch((caught: unknown) => caught);
    } finally {
      process.env.PATH = path;
    }
    expect(SandboxCapabilityUnsupportedError.isInstance(error), String(error)).toBe(true);
    expect((error as SandboxCapabilityUnsupportedError).capability).toBe('network.allowCidrs');
    expect((error as Error).message).toMatch(/^network: .*(node or python3)/);
    const left = await provider.docker.listContainers({ all: true, filters: { label: [`dev.sandport.name=${name}`] } });
    expect(left).toEqual([]);
  });

  it.skipIf(!root)(
    'a creator that dies takes the bridge with it: the sandbox keeps no egress, and its update is refused elsewhere',
    async () => {
      const script = [
        `import { createDockerSandboxProvider } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'adapters', 'docker', 'index.ts'))};`,
        `import { startTestInternet } from ${JSON.stringify(join(import.meta.dirname, '..', 'egress-internet.ts'))};`,
        'const egressNetwork = await startTestInternet();',
        `const sandbox = await createDockerSandboxProvider({ egressNetwork }).create({ image: ${JSON.stringify(baseImage)}, network: { allowDomains: ['allowed.test'] }, timeoutMs: 120_000 });`,
        'console.log(sandbox.id);',
        'setInterval(() => undefined, 1_000);',
      ].join('\n');
      const { creator, line: id } = await startCreator(['--input-type=module', '-e', script]);
      const sandbox = await provider.fromId(id);
      sandboxes.push(sandbox);
      const directory = await egressDirectoryOf(sandbox);
      // Its execs from here get the proxy variables too (the container's config does not hold them).
      expect((await sandbox.run(['printenv', 'http_proxy'])).stdout.trim()).toBe('http://127.0.0.1:3128');
      expect(statusOf(await curl(sandbox, ['http://allowed.test/'])), 'through the creator’s proxy').toBe('200');
      expect(await processesNaming(directory)).not.toEqual([]);
      creator.kill('SIGKILL');
      // The parent death signal ends the forwarder with its creator.
      expect(await eventually(async () => (await processesNaming(directory)).length === 0)).toBe(true);
      const after = await curl(sandbox, ['http://allowed.test/']);
      expect(statusOf(after), 'no egress without the creator').not.toBe('200');
      const update = await sandbox.updateNetwork({ allowDomains: ['allowed.test'] }).catch((error: unknown) => error);
      expect(SandboxCapabilityUnsupportedError.isInstance(update)).toBe(true);
      expect((update as Error).message).toContain('lives in the process that created it');
      await sandbox.terminate();
      // The next allowlisted create sweeps the directory the dead creator left.
      await (await create({ network: { allowDomains: [] } })).terminate();
      expect(existsSync(directory)).toBe(false);
    },
    90_000,
  );
});

describe('docker allowlist plan', () => {
  const plan = (options: CreateSandboxOptions, dockerOptions: Parameters<typeof planDockerCreate>[1] = {}) =>
    planDockerCreate(createSandboxOptionsSchema.parse(options), dockerOptions, {
      image: 'x',
      pidsLimit: 64,
      egressDirectory: '/tmp/sandport-egress-1-000000000000',
    });

  it('no network, the socket directory mounted read-only, the proxy variables for execs only, and the network label', () => {
    const planned = plan({ network: { allowDomains: ['allowed.test'] }, env: { A: '1', Http_Proxy: 'x' } });
    expect(planned.network).toBe('none');
    expect(planned.container.HostConfig!.NetworkMode).toBe('none');
    expect(planned.container.HostConfig!.Mounts).toContainEqual({
      Type: 'bind',
      Source: '/tmp/sandport-egress-1-000000000000',
      Target: '/run/sandport-egress',
      ReadOnly: true,
    });
    expect(planned.container.Env).toEqual(['A=1']);
    expect(planned.env).toEqual({ A: '1', ...egressProxyEnv() });
    expect(planned.egress).toEqual({
      policy: { allowDomains: ['allowed.test'], allowCidrs: [] },
      hostDirectory: '/tmp/sandport-egress-1-000000000000',
    });
    expect(planned.container.Labels!['dev.sandport.network']).toBe('allowlist');
    expect(planned.warnings.map((warning) => (warning.type === 'unsupported-setting' ? warning.setting : ''))).toEqual([
      'network',
      'env.Http_Proxy',
    ]);
  });

  it("'block' and 'allow' are untouched: no proxy, no mount, the env as given", () => {
    for (const network of ['block', 'allow'] as const) {
      const planned = plan({ network, env: { HTTP_PROXY: 'http://mine:1' } });
      expect(planned.egress).toBeUndefined();
      expect(planned.env).toEqual({ HTTP_PROXY: 'http://mine:1' });
      expect(planned.container.HostConfig!.Mounts).toEqual([]);
      expect(planned.container.Labels!['dev.sandport.network']).toBe(network);
      expect(planned.warnings).toEqual([]);
    }
  });

  it('refuses published ports and a host forward on the bridge port with an allowlist', () => {
    const ports = (() => {
      try {
        plan({ network: { allowDomains: [] }, ports: [8080] });
      } catch (error) {
        return error;
      }
    })();
    expect(SandboxCapabilityUnsupportedError.isInstance(ports)).toBe(true);
    expect((ports as SandboxCapabilityUnsupportedError).capability).toBe('tunnels');
    expect(() => plan({ network: { allowDomains: [] } }, { hostForwards: { '3128': '/run/x.sock' } })).toThrow(
      expect.objectContaining({ argument: 'providerOptions.docker.hostForwards.3128' }),
    );
    // Another port stays a host forward as before.
    expect(plan({ network: { allowDomains: [] } }, { hostForwards: { '7000': '/run/x.sock' } }).forwards).toEqual([7000]);
  });
});
