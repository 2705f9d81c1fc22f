/**
 * Network allowlists on the local provider (issue 15), with real bubblewrap sandboxes of the
 * default rootfs image (it has curl and bash) and a test internet: the egress proxy of each
 * sandbox resolves `allowed.test` and `denied.test` to documentation addresses whose dials land
 * on servers this file opened on loopback, so no traffic leaves the machine.
 *
 * What holds: curl reaches an allowed name through the proxy variables and gets 403 for another;
 * a program that ignores the variables, or looks a name up itself, reaches nothing; updateNetwork
 * changes the next connection; each connection is an `egress` event; the proxy and its bridge
 * end with the sandbox, whatever ends it.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCreator } from '../creator-process.js';
import {
  createLocalSandboxProvider,
  localCapabilities,
  planLocalCreate,
  type LocalHostFacts,
  type LocalSandbox,
  type LocalSandboxProvider,
} from '../../adapters/local/index.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  createSandboxOptionsSchema,
  egressProxyEnv,
  type CreateSandboxOptions,
} from '../../src/kit/index.js';
import type { EgressEvent } from '../../src/spec/events.js';
import { startTestInternet, type TestInternet } from '../egress-internet.js';
import { hostProcessesWith, localHostResources } from '../host-resources.js';

const rootfs = process.env.SANDPORT_ROOTFS_DIR ?? '/var/cache/sandport/rootfs/bookworm';
const marker = (() => {
  try {
    return readFileSync(join(rootfs, '.sandport-complete'), 'utf8');
  } catch {
    return '';
  }
})();
const available = process.platform === 'linux' && process.getuid?.() === 0 && /\bcurl\b/.test(marker);
if (!available) {
  console.warn(`skipping local egress tests: needs root and ${rootfs} built with curl (run: sudo bash scripts/build-rootfs.sh)`);
}

const stateDir = mkdtempSync(join(tmpdir(), 'sandport-egress-'));
let internet: TestInternet;
let provider: LocalSandboxProvider;
const events: EgressEvent[] = [];

beforeAll(async () => {
  if (!available) return;
  internet = await startTestInternet();
  provider = createLocalSandboxProvider({ stateDir, egressNetwork: internet });
  provider.events.on('egress', (event) => events.push(event));
});

afterAll(async () => {
  await internet?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const allowlisted = (network: CreateSandboxOptions['network'], extra: CreateSandboxOptions = {}) =>
  provider.create({ image: rootfs, network, ...extra });

/** curl inside the sandbox, bounded; `status` is the last response's (0 when none), `connect` a CONNECT's. */
async function curl(sandbox: LocalSandbox, url: string, extra: readonly string[] = []) {
  const result = await sandbox.run([
    'curl',
    '-sS',
    '-k',
    '--connect-timeout',
    '5',
    '--max-time',
    '20',
    '-w',
    '\n%{http_code} %{http_connect}',
    ...extra,
    url,
  ]);
  const cut = result.stdout.lastIndexOf('\n');
  const [status, connect] = result.stdout
    .slice(cut + 1)
    .split(' ')
    .map((field) => Number(field) || 0);
  return {
    exitCode: result.exitCode,
    status: status!,
    connect: connect!,
    body: result.stdout.slice(0, Math.max(cut, 0)),
    stderr: result.stderr,
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** Polls until `check` holds, or `timeoutMs` passes (the assertion after it says what failed). */
async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Unix sockets of this network namespace bound to `path` (a listener stays listed after its file is unlinked). */
const unixSocketsAt = (path: string) =>
  readFileSync('/proc/self/net/unix', 'utf8')
    .split('\n')
    .filter((line) => line.endsWith(` ${path}`));

const openFds = () => readdirSync('/proc/self/fd').length;

/** The inode of the sandbox's 127.0.0.1:3128 listener, from its own /proc/net/tcp. */
async function egressListenerInode(sandbox: LocalSandbox): Promise<string> {
  const table = (await sandbox.run(['cat', '/proc/net/tcp'])).stdout;
  const line = table.split('\n').find((entry) => / 0100007F:0C38 00000000:0000 0A /.test(entry));
  if (!line) throw new Error(`nothing listens on 127.0.0.1:3128 in ${sandbox.id}`);
  return line.trim().split(/\s+/)[9]!;
}

/** Whether process `pid` holds the socket with `inode` (the egress listener lives in the proxy's process). */
const holdsSocket = (pid: number | 'self', inode: string) =>
  readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  });

/** What an ended sandbox may not leave: processes naming its directory, the directory, the proxy's socket. */
function leftovers(sandbox: LocalSandbox, listener?: string): string[] {
  return [
    ...(listener !== undefined && holdsSocket('self', listener) ? [`egress listener socket:[${listener}] still open here`] : []),
    ...hostProcessesWith(sandbox.stateDir).map(
      (pid) => `process ${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`,
    ),
    ...(existsSync(sandbox.stateDir) ? [`state dir ${sandbox.stateDir}`] : []),
    ...unixSocketsAt(join(sandbox.stateDir, 'egress.sock')).map((line) => `proxy socket ${line}`),
  ];
}

describe('local create plan of an allowlist (no I/O)', () => {
  const host: LocalHostFacts = {
    isRoot: true,
    cgroups: undefined,
    tunUsable: true,
    binaries: { slirp4netns: '/usr/bin/slirp4netns', socat: '/usr/bin/socat' },
  };
  const plan = (options: CreateSandboxOptions) =>
    planLocalCreate(createSandboxOptionsSchema.parse(options), localCapabilities, host, { defaultPidsLimit: 1024 });

  it('no route out (no slirp4netns), the allowlist kept for the proxy, the proxy variables in the environment', () => {
    const planned = plan({ network: { allowDomains: ['*.example.org'], allowCidrs: ['192.0.2.0/24'] }, env: { KEEP: '1' } });
    expect(planned.networked).toBe(false);
    expect(planned.allowlist).toEqual({ allowDomains: ['*.example.org'], allowCidrs: ['192.0.2.0/24'] });
    expect(planned.env).toMatchObject({ ...egressProxyEnv(), KEEP: '1' });
    expect(planned.warnings).toEqual([expect.objectContaining({ type: 'unsupported-setting', setting: 'network' })]);
  });

  it("'block' and 'allow' have no allowlist, no proxy variables and no warning", () => {
    for (const network of ['block', 'allow'] as const) {
      const planned = plan({ network, env: { HTTP_PROXY: 'http://mine:1' } });
      expect(planned.allowlist).toBeUndefined();
      expect(planned.env.HTTP_PROXY).toBe('http://mine:1');
      expect(planned.env.https_proxy).toBeUndefined();
      expect(planned.warnings).toEqual([]);
    }
  });

  it('an empty allowlist is still an allowlist: a proxy that allows nothing until updateNetwork widens it', () => {
    expect(plan({ network: { allowDomains: [] } }).allowlist).toEqual({ allowDomains: [], allowCidrs: [] });
  });
});

describe.skipIf(!available)('local provider: network allowlists through the egress proxy', () => {
  it('curl reaches an allowed name (HTTP and HTTPS) through the proxy variables; a denied name gets 403', async () => {
    await using sandbox = await allowlisted({ allowDomains: ['allowed.test'] });
    const dialsBefore = internet.dialed.length;
    const plain = await curl(sandbox, 'http://allowed.test/');
    expect(plain, plain.stderr).toMatchObject({ exitCode: 0, status: 200, body: 'hello from 198.51.100.10' });
    const tls = await curl(sandbox, 'https://allowed.test/');
    expect(tls, tls.stderr).toMatchObject({ exitCode: 0, status: 200, connect: 200, body: 'hello from 198.51.100.10' });
    const denied = await curl(sandbox, 'http://denied.test/', ['-D', '-']);
    expect(denied.status, denied.stderr).toBe(403);
    expect(denied.body.toLowerCase()).toContain('x-sandport-egress: denied');
    const deniedTls = await curl(sandbox, 'https://denied.test/');
    expect(deniedTls.exitCode).not.toBe(0);
    expect(deniedTls.connect, deniedTls.stderr).toBe(403);
    // The proxy never dialled the denied address.
    expect(internet.dialed.slice(dialsBefore).map(({ address }) => address)).not.toContain('198.51.100.20');
  });

  it('the environment names the proxy (every exec and the entrypoint); sandbox.warnings says so', async () => {
    const proxyEnv = egressProxyEnv();
    await using sandbox = await allowlisted(
      { allowDomains: [] },
      { command: ['/bin/sh', '-c', 'env > /tmp/entrypoint.env; exec sleep 600'] },
    );
    const execEnv = `\n${(await sandbox.run(['env'])).stdout}`;
    const entrypointEnv = await sandbox.files.readText('/tmp/entrypoint.env');
    for (const [name, value] of Object.entries(proxyEnv)) {
      expect(execEnv).toContain(`\n${name}=${value}\n`);
      expect(entrypointEnv).toContain(`${name}=${value}\n`);
    }
    const warning = sandbox.warnings.find((each) => each.type === 'unsupported-setting' && each.setting === 'network');
    expect(warning).toMatchObject({ details: expect.stringContaining('egress proxy at http://127.0.0.1:3128') });
  });

  it('a program ignoring the proxy reaches nothing: no route, no interface but lo, the address never dialled', async () => {
    await using sandbox = await allowlisted({ allowDomains: ['allowed.test'], allowCidrs: ['198.51.100.0/24'] });
    const dialsBefore = internet.dialed.length;
    const direct = await curl(sandbox, 'http://198.51.100.10/', ['--noproxy', '*']);
    expect(direct.exitCode, direct.stderr).not.toBe(0);
    expect(direct.status).toBe(0);
    const byName = await curl(sandbox, 'http://allowed.test/', ['--noproxy', '*']);
    expect(byName.exitCode).not.toBe(0);
    const raw = await sandbox.run(['bash', '-c', 'exec 3<>/dev/tcp/198.51.100.10/80 && echo connected']);
    expect(raw.stdout).toBe('');
    expect(raw.exitCode).not.toBe(0);
    const interfaces = await sandbox.run(['sh', '-c', "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
    expect(interfaces.stdout).toBe('lo\n');
    // /proc/net/route: a header line and no route.
    expect((await sandbox.run(['cat', '/proc/net/route'])).stdout.trim().split('\n')).toHaveLength(1);
    expect(internet.dialed.length).toBe(dialsBefore);
    // Through the proxy, the same address is reachable (it is in allowCidrs).
    expect((await curl(sandbox, 'http://198.51.100.10/')).status).toBe(200);
  });

  it('no DNS leaves the sandbox: lookups fail, a query to any resolver has no route', async () => {
    await using sandbox = await allowlisted({ allowDomains: ['allowed.test'] });
    const lookup = await sandbox.run(['getent', 'hosts', 'allowed.test']);
    expect(lookup.exitCode).not.toBe(0);
    expect(lookup.stdout).toBe('');
    const resolved = await curl(sandbox, 'http://allowed.test/', ['--noproxy', '*']);
    expect(resolved.exitCode, resolved.stderr).toBe(6); // CURLE_COULDNT_RESOLVE_HOST
    for (const resolver of ['10.0.2.3', '198.51.100.53', '8.8.8.8']) {
      const query = await sandbox.run(['bash', '-c', `exec 3<>/dev/udp/${resolver}/53 && echo -n x >&3 && echo sent`]);
      expect(query.stdout, `udp to ${resolver}`).toBe('');
    }
  });

  it('updateNetwork changes what the next connection reaches, paused or not; refusals change nothing', async () => {
    await using sandbox = await allowlisted({ allowDomains: ['allowed.test'] });
    expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(200);
    await sandbox.updateNetwork({ allowDomains: ['denied.test'] });
    expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(403);
    expect((await curl(sandbox, 'http://denied.test/')).body).toBe('hello from 198.51.100.20');
    await sandbox.updateNetwork('block');
    expect((await curl(sandbox, 'http://denied.test/')).status).toBe(403);
    // While paused (the proxy and bridge stay up), then after the resume.
    await sandbox.pause();
    await sandbox.updateNetwork({ allowCidrs: ['198.51.100.10/32'] });
    await sandbox.resume();
    expect((await curl(sandbox, 'http://198.51.100.10/')).status).toBe(200);
    expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(200);
    expect((await curl(sandbox, 'http://denied.test/')).status).toBe(403);

    const toAllow = await rejection(sandbox.updateNetwork('allow'));
    expect(SandboxCapabilityUnsupportedError.isInstance(toAllow)).toBe(true);
    expect((toAllow as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
    const malformed = await rejection(sandbox.updateNetwork({ allowDomains: ['not a name'] }));
    expect(SandboxInvalidArgumentError.isInstance(malformed)).toBe(true);
    expect((malformed as SandboxInvalidArgumentError).argument).toBe('network.allowDomains.0');
    const aborted = await rejection(sandbox.updateNetwork('block', { signal: AbortSignal.abort(new Error('stop')) }));
    expect((aborted as Error).message).toBe('stop');
    // None of the refused calls changed the policy.
    expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(200);

    await sandbox.terminate();
    expect(SandboxNotFoundError.isInstance(await rejection(sandbox.updateNetwork('block')))).toBe(true);
  });

  it("updateNetwork on a sandbox created with 'block' is refused with capability network.update", async () => {
    await using sandbox = await provider.create({ image: rootfs, network: 'block' });
    const refused = await rejection(sandbox.updateNetwork({ allowDomains: ['allowed.test'] }));
    expect(SandboxCapabilityUnsupportedError.isInstance(refused)).toBe(true);
    expect((refused as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
    expect((refused as Error).message).toContain("network: 'block'");
  });

  it('each connection is an egress event: denied at once with a reason, allowed on close with its bytes', async () => {
    await using sandbox = await allowlisted({ allowDomains: ['allowed.test'] });
    const mine = () => events.filter((event) => event.sandboxId === sandbox.id);
    expect((await curl(sandbox, 'http://allowed.test/bytes?n=5000')).status).toBe(200);
    expect((await curl(sandbox, 'https://denied.test/')).connect).toBe(403);
    await eventually(() => mine().some((event) => event.decision === 'allowed'));
    const allowed = mine().find((event) => event.decision === 'allowed');
    expect(allowed).toMatchObject({ provider: 'local', host: 'allowed.test', port: 80, address: '198.51.100.10', protocol: 'http' });
    expect(allowed!.bytesReceived).toBeGreaterThanOrEqual(5000);
    expect(allowed!.bytesSent).toBeGreaterThan(0);
    const denied = mine().find((event) => event.decision === 'denied');
    expect(denied).toMatchObject({
      provider: 'local',
      host: 'denied.test',
      port: 443,
      protocol: 'connect',
      bytesSent: 0,
      bytesReceived: 0,
    });
    expect(typeof denied!.reason).toBe('string');
  });

  it('the proxy variables win over the create env and secrets (each dropped one a warning); an exec env wins for its command', async () => {
    const proxyEnv = egressProxyEnv();
    await using sandbox = await allowlisted(
      { allowDomains: ['allowed.test'] },
      { env: { HTTPS_PROXY: 'http://proxy.example:8080', Http_Proxy: 'x', OTHER: 'kept' }, secrets: { no_proxy: '*' } },
    );
    const env = `\n${(await sandbox.run(['env'])).stdout}`;
    expect(env).toContain(`\nHTTPS_PROXY=${proxyEnv.HTTPS_PROXY}\n`);
    expect(env).toContain(`\nno_proxy=${proxyEnv.no_proxy}\n`);
    expect(env).not.toContain('Http_Proxy=');
    expect(env).toContain('\nOTHER=kept\n');
    const dropped = sandbox.warnings.flatMap((warning) => (warning.type === 'unsupported-setting' ? [warning.setting] : []));
    expect(dropped).toEqual(expect.arrayContaining(['env.HTTPS_PROXY', 'env.Http_Proxy', 'secrets.no_proxy', 'network']));
    // The dropped secret's value is in no warning.
    expect(JSON.stringify(sandbox.warnings)).not.toContain('"*"');
    expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(200);
    // An exec's own value is its command's choice: with no route but the proxy, it fails closed.
    const bypass = await sandbox.run(['sh', '-c', 'echo $NO_PROXY'], { env: { NO_PROXY: '*' } });
    expect(bypass.stdout).toBe('*\n');
    const ignored = await sandbox.run(['curl', '-sS', '--max-time', '10', 'http://allowed.test/'], {
      env: { http_proxy: '', NO_PROXY: '*', no_proxy: '*' },
    });
    expect(ignored.exitCode).not.toBe(0);

    // Without an allowlist the names are the caller's, as any other variable, and nothing is said.
    await using open = await provider.create({ image: rootfs, network: 'block', env: { HTTPS_PROXY: 'http://proxy.example:8080' } });
    expect((await open.run(['sh', '-c', 'echo $HTTPS_PROXY; echo ${http_proxy:-unset}'])).stdout).toBe(
      'http://proxy.example:8080\nunset\n',
    );
    expect(open.warnings).toEqual([]);
  });

  it('port 3128 belongs to the egress bridge: a host forward or a published port on it is refused', async () => {
    const forward = await rejection(
      allowlisted({ allowDomains: [] }, { providerOptions: { local: { hostForwards: { 3128: join(stateDir, 'x.sock') } } } }),
    );
    expect(SandboxInvalidArgumentError.isInstance(forward)).toBe(true);
    expect((forward as SandboxInvalidArgumentError).argument).toBe('providerOptions.local.hostForwards.3128');
    const published = await rejection(allowlisted({ allowDomains: [] }, { ports: [3128] }));
    expect((published as SandboxInvalidArgumentError).argument).toBe('ports');
  });

  it.each([
    ['terminate', async (sandbox: LocalSandbox) => sandbox.terminate()],
    [
      'the lifetime timeout',
      async (sandbox: LocalSandbox) => {
        // Armed only now, so the sandbox cannot time out before the connection above.
        await sandbox.extendTimeout(1);
        expect(await sandbox.wait()).toMatchObject({ reason: 'lifetime-timeout' });
      },
    ],
    [
      'a crash (launcher SIGKILLed)',
      async (sandbox: LocalSandbox) => {
        process.kill(Number(readFileSync(join(sandbox.stateDir, 'launcher.pid'), 'utf8')), 'SIGKILL');
        await sandbox.wait();
      },
    ],
  ] as const)('after %s the proxy and its bridge are gone: no process, socket, fd or host resource left', async (_what, end) => {
    // The counts this file's state directory scopes (cgroups and bwrap processes are the host's, shared with other runs).
    const scoped = async () => {
      const counts = await localHostResources(stateDir);
      return { helpers: counts['local: network and port helpers'], entries: counts['local: state dir entries'] };
    };
    const baseline = await scoped();
    const fds = openFds();
    const sandbox = await allowlisted({ allowDomains: ['allowed.test'] });
    let listener: string | undefined;
    try {
      expect((await curl(sandbox, 'http://allowed.test/')).status).toBe(200);
      // The sandbox's loopback listener is held by this process, where the proxy accepts on it.
      listener = await egressListenerInode(sandbox);
      expect(holdsSocket('self', listener)).toBe(true);
      await end(sandbox);
    } finally {
      await sandbox.terminate();
    }
    await eventually(() => leftovers(sandbox, listener).length === 0 && openFds() <= fds);
    expect(leftovers(sandbox, listener)).toEqual([]);
    expect(openFds()).toBeLessThanOrEqual(fds);
    expect(await scoped()).toEqual(baseline);
  });

  it('after the entrypoint exits the proxy and its bridge are gone', async () => {
    const sandbox = await allowlisted(
      { allowDomains: ['allowed.test'] },
      { command: ['/bin/sh', '-c', 'curl -sS -o /dev/null http://allowed.test/'] },
    );
    const ended = await sandbox.wait();
    expect(ended).toMatchObject({ reason: 'entrypoint-exited', exitCode: 0 });
    await eventually(() => leftovers(sandbox).length === 0);
    expect(leftovers(sandbox)).toEqual([]);
  });

  it('a creator that dies takes its allowlisted sandbox along, proxy bridge included (the proxy lived in it)', async () => {
    const script = join(stateDir, 'egress-creator.mts');
    writeFileSync(
      script,
      [
        `import { createLocalSandboxProvider } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'adapters', 'local', 'index.js'))};`,
        `const provider = createLocalSandboxProvider({ stateDir: ${JSON.stringify(stateDir)} });`,
        `const sandbox = await provider.create({ image: ${JSON.stringify(rootfs)}, network: { allowDomains: ['allowed.test'] } });`,
        "const tcp = (await sandbox.run(['cat', '/proc/net/tcp'])).stdout;",
        "const listener = tcp.split('\\n').find((line) => / 0100007F:0C38 00000000:0000 0A /.test(line))?.trim().split(/\\s+/)[9];",
        'process.stdout.write(`${sandbox.stateDir} ${listener}\\n`);',
        'setInterval(() => undefined, 1_000);',
      ].join('\n'),
    );
    const { creator, line } = await startCreator([script]);
    const [dir, listener] = line.split(' ') as [string, string];
    // The creator itself holds the sandbox's egress listener: no bridge process outlives it.
    expect(holdsSocket(creator.pid!, listener)).toBe(true);
    // The creator alone: its launcher sees the lifeline close and ends the sandbox.
    creator.kill('SIGKILL');
    await eventually(() => hostProcessesWith(dir).length === 0 && !existsSync(dir), 20_000);
    expect(hostProcessesWith(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
