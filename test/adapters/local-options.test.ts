/** Option mapping of the local provider: defaults, refusals, host checks and the bwrap argv. No I/O. */
import { describe, expect, it } from 'vitest';
import { localCapabilities, planLocalCreate, type LocalHostFacts } from '../../adapters/local/index.js';
// The bwrap argv builders are internals, tested by path: users never see them.
import { bwrapStage, execArgv, type BwrapInputs } from '../../adapters/local/local-bwrap.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  createSandboxOptionsSchema,
  type CreateSandboxOptions,
} from '../../src/kit/index.js';

const rootHost: LocalHostFacts = {
  isRoot: true,
  cgroups: { version: 2, base: '/sys/fs/cgroup' },
  tunUsable: true,
  binaries: { slirp4netns: '/usr/bin/slirp4netns', socat: '/usr/bin/socat' },
};
const userHost: LocalHostFacts = { ...rootHost, isRoot: false, cgroups: undefined, tunUsable: false };
const bareHost: LocalHostFacts = { ...rootHost, binaries: {} };

const plan = (options: CreateSandboxOptions, host: LocalHostFacts = rootHost) =>
  planLocalCreate(createSandboxOptionsSchema.parse(options), localCapabilities, host, { defaultPidsLimit: 1024 });

describe('planLocalCreate', () => {
  it('defaults: the host image, outbound network, /workspace, 5 minutes, the default pids limit', () => {
    const result = plan({});
    expect(result).toMatchObject({
      image: { kind: 'host' },
      networked: true,
      ports: [],
      forwards: [],
      limits: { pidsLimit: 1024 },
      workdir: '/workspace',
      timeoutMs: 300_000,
      idleTimeoutMs: undefined,
      entrypoint: undefined,
      warnings: [],
    });
    expect(result.env).toEqual({ PATH: expect.stringContaining('/usr/bin'), HOME: '/root' });
  });

  it.each<[string, CreateSandboxOptions, Record<string, unknown>]>([
    ['a rootfs directory', { image: '/srv/rootfs' }, { image: { kind: 'rootfs', path: '/srv/rootfs' } }],
    ['"host"', { image: 'host' }, { image: { kind: 'host' } }],
    [
      'a local snapshot',
      { image: { type: 'snapshot', provider: 'local', id: 'snap-0123456789abcdef' } },
      { image: { kind: 'snapshot', id: 'snap-0123456789abcdef' } },
    ],
    ['a blocked network', { network: 'block' }, { networked: false }],
    ['ports', { ports: [8080, { port: 9090 }] }, { ports: [8080, 9090] }],
    [
      'host forwards',
      { providerOptions: { local: { hostForwards: { '7000': '/run/proxy.sock' } } } },
      { forwards: [{ port: 7000, socketPath: '/run/proxy.sock' }] },
    ],
    ['limits', { cpu: 0.5, memoryMiB: 256, pidsLimit: 64 }, { limits: { cpu: 0.5, memoryMiB: 256, pidsLimit: 64 } }],
    ['a string entrypoint through sh -c', { command: 'sleep 1' }, { entrypoint: ['/bin/sh', '-c', 'sleep 1'] }],
    ['an argv entrypoint unchanged', { command: ['sleep', '1'] }, { entrypoint: ['sleep', '1'] }],
    ['timers', { timeoutMs: 60_000, idleTimeoutMs: 5_000 }, { timeoutMs: 60_000, idleTimeoutMs: 5_000 }],
    ['a workdir', { workdir: '/work' }, { workdir: '/work' }],
    ['tags and name', { name: 'box', tags: { team: 'a' } }, { name: 'box', tags: { team: 'a' } }],
    [
      'volumes, sorted, read-only only when asked',
      { volumes: { '/b': '/host/b', '/a': { source: '/host/a', readOnly: true }, '/c': { source: '/host/c' } } },
      {
        volumes: [
          { target: '/a', source: '/host/a', readOnly: true },
          { target: '/b', source: '/host/b', readOnly: false },
          { target: '/c', source: '/host/c', readOnly: false },
        ],
      },
    ],
  ])('maps %s', (_label, options, expected) => {
    expect(plan(options)).toMatchObject(expected);
  });

  it('puts secrets in the environment over env', () => {
    expect(plan({ env: { A: '1', T: 'env' }, secrets: { T: 'secret' } }).env).toMatchObject({ A: '1', T: 'secret' });
  });

  it('warns for encrypted ports (local tunnels are plain)', () => {
    expect(plan({ ports: [{ port: 8080, encrypted: true }] }).warnings).toEqual([expect.objectContaining({ setting: 'ports.encrypted' })]);
  });

  it('has no limits without cgroups (and asks for none)', () => {
    expect(plan({ network: 'block' }, userHost).limits).toBeUndefined();
  });

  it.each<[string, CreateSandboxOptions, LocalHostFacts, string]>([
    ['duplicate ports', { ports: [8080, 8080] }, rootHost, 'ports'],
    ['a relative image path', { image: 'relative/rootfs' }, rootHost, 'image'],
    ['a snapshot id that is not one of ours', { image: { type: 'snapshot', provider: 'local', id: '../../etc' } }, rootHost, 'image'],
    ['another provider’s snapshot', { image: { type: 'snapshot', provider: 'modal', id: 'im-1' } }, rootHost, 'image'],
    ['a relative volume source', { volumes: { '/data': 'relative/dir' } }, rootHost, 'volumes./data'],
    ['a volume over /etc', { volumes: { '/etc': '/tmp' } }, rootHost, 'volumes./etc'],
    ['a volume over /usr/', { volumes: { '/usr/': '/tmp' } }, rootHost, 'volumes./usr/'],
    ['a lifetime beyond 24 hours', { timeoutMs: 24 * 60 * 60 * 1000 + 1 }, rootHost, 'timeoutMs'],
    [
      'an unknown providerOptions.local key',
      { providerOptions: { local: { hostForward: {} } } },
      rootHost,
      'providerOptions.local.hostForward',
    ],
    [
      'a host forward to a relative socket',
      { providerOptions: { local: { hostForwards: { '7000': 'proxy.sock' } } } },
      rootHost,
      'providerOptions.local.hostForwards.7000',
    ],
    [
      'a host forward on port 0',
      { providerOptions: { local: { hostForwards: { '0': '/run/p.sock' } } } },
      rootHost,
      'providerOptions.local.hostForwards.0',
    ],
  ])('refuses %s as SandboxInvalidArgumentError', (_label, options, host, argument) => {
    let thrown: unknown;
    try {
      plan(options, host);
    } catch (error) {
      thrown = error;
    }
    expect(SandboxInvalidArgumentError.isInstance(thrown), String(thrown)).toBe(true);
    expect((thrown as SandboxInvalidArgumentError).argument).toBe(argument);
  });

  it.each<[string, CreateSandboxOptions, LocalHostFacts, string]>([
    ['a gpu', { gpu: 'A100' }, rootHost, 'gpu'],
    ['an image build', { image: { base: 'debian', commands: [] } }, rootHost, 'images.build'],
    ['limits without cgroups', { memoryMiB: 64, network: 'block' }, userHost, 'limits'],
    ['outbound network without a usable tun device', {}, userHost, 'network'],
    ['outbound network without slirp4netns', {}, bareHost, 'network'],
    ['ports without socat', { network: 'block', ports: [8080] }, bareHost, 'tunnels'],
    ['a rootfs image without root', { image: '/srv/rootfs', network: 'block' }, userHost, 'images.reference'],
  ])('refuses %s as SandboxCapabilityUnsupportedError', (_label, options, host, capability) => {
    let thrown: unknown;
    try {
      plan(options, host);
    } catch (error) {
      thrown = error;
    }
    expect(SandboxCapabilityUnsupportedError.isInstance(thrown), String(thrown)).toBe(true);
    expect((thrown as SandboxCapabilityUnsupportedError).capability).toBe(capability);
  });

  it('plans an allowlist without socat or slirp4netns: no route out, the proxy listens in the sandbox itself', () => {
    const planned = plan({ network: { allowDomains: ['example.org'], allowCidrs: ['203.0.113.0/24'] } }, bareHost);
    expect(planned.networked).toBe(false);
    expect(planned.allowlist).toEqual({ allowDomains: ['example.org'], allowCidrs: ['203.0.113.0/24'] });
  });
});

const inputs = (extra: Partial<BwrapInputs> = {}): BwrapInputs => ({
  binaries: { bwrap: '/usr/bin/bwrap', setpriv: '/usr/bin/setpriv' },
  isRoot: true,
  sandboxUid: 65534,
  dir: '/state/sb-1',
  base: 'host',
  hostRootSymlinks: new Map([
    ['bin', 'usr/bin'],
    ['lib', ''],
  ]),
  presentHostPaths: new Set(['/etc/shadow', '/etc/ssh']),
  networked: false,
  workdir: '/workspace',
  volumes: [],
  ...extra,
});

/** The values following each occurrence of `flag` (pairs: `--bind src dest`). */
const pairs = (argv: string[], flag: string) => argv.flatMap((arg, index) => (arg === flag ? [[argv[index + 1], argv[index + 2]]] : []));

describe('bwrapStage', () => {
  it('as root: drops to the sandbox uid, with a parent-death signal set after the change, then bwrap in every namespace', () => {
    const argv = bwrapStage(inputs());
    const bwrap = argv.indexOf('/usr/bin/bwrap');
    expect(argv.slice(0, bwrap)).toEqual([
      '/usr/bin/setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--pdeathsig',
      'KILL',
      '--',
    ]);
    expect(argv).toEqual(expect.arrayContaining(['--unshare-all', '--cap-drop', 'ALL', '--die-with-parent', '--new-session']));
    expect(argv.slice(-3)).toEqual(['/bin/sh', '-c', expect.stringContaining('sleep infinity')]);
  });

  it('without root: no uid change, still the parent-death signal', () => {
    const argv = bwrapStage(inputs({ isRoot: false }));
    expect(argv.slice(0, 4)).toEqual(['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--']);
  });

  it('host view: the layer as /, system directories read-only, host secrets masked where present', () => {
    const argv = bwrapStage(inputs());
    expect(pairs(argv, '--bind')).toEqual([['/state/sb-1/layer', '/']]);
    expect(pairs(argv, '--ro-bind')).toEqual([
      ['/usr', '/usr'],
      ['/lib', '/lib'],
      ['/etc', '/etc'],
      ['/state/sb-1/empty', '/etc/shadow'],
      ['/state/sb-1/empty-dir', '/etc/ssh'],
    ]);
    expect(pairs(argv, '--symlink')).toEqual([['usr/bin', '/bin']]);
    expect(argv).not.toContain('/opt');
  });

  it('volumes: read-only ones with --ro-bind, the rest with --bind; resolv.conf only with a network', () => {
    const argv = bwrapStage(
      inputs({
        networked: true,
        volumes: [
          { target: '/ro', source: '/h/ro', readOnly: true },
          { target: '/rw', source: '/h/rw', readOnly: false },
        ],
      }),
    );
    expect(pairs(argv, '--ro-bind')).toContainEqual(['/h/ro', '/ro']);
    expect(pairs(argv, '--bind')).toContainEqual(['/h/rw', '/rw']);
    expect(pairs(argv, '--ro-bind')).toContainEqual(['/state/sb-1/resolv.conf', '/etc/resolv.conf']);
    expect(pairs(bwrapStage(inputs()), '--ro-bind').map(([, target]) => target)).not.toContain('/etc/resolv.conf');
  });

  it('a rootfs image: an overlay in its own mount namespace, merged as /', () => {
    const argv = bwrapStage(inputs({ base: '/images/abc' }));
    expect(argv.slice(0, 5)).toEqual(['unshare', '-m', '--propagation', 'private', '--']);
    expect(argv).toContain('lowerdir=/images/abc,upperdir=/state/sb-1/layer,workdir=/state/sb-1/work,userxattr');
    expect(pairs(argv, '--bind')).toEqual([['/state/sb-1/merged', '/']]);
    expect(argv).not.toContain('/etc/shadow');
  });
});

describe('execArgv', () => {
  it('joins the cgroup leaf, enters every namespace, drops capabilities, then runs the wrapper', () => {
    const argv = execArgv({
      nsenter: '/usr/bin/nsenter',
      setpriv: '/usr/bin/setpriv',
      isRoot: true,
      childPid: 42,
      procsFiles: ['/cg/leaf/cgroup.procs'],
      inner: ['/bin/sh', '-c', 'wrapper'],
    });
    const separator = argv.indexOf('--');
    expect(argv.slice(separator - 1, separator + 4)).toEqual(['/cg/leaf/cgroup.procs', '--', '/usr/bin/nsenter', '-t', '42']);
    expect(argv).toEqual(expect.arrayContaining(['-U', '-m', '-p', '-n', '-i', '-u', '-r', '-w', '--no-new-privs', '--bounding-set=-all']));
    expect(argv).not.toContain('--preserve-credentials');
    expect(argv.slice(-3)).toEqual(['/bin/sh', '-c', 'wrapper']);
  });

  it('without root keeps its credentials (it already is the sandbox root)', () => {
    const argv = execArgv({ nsenter: 'nsenter', setpriv: 'setpriv', isRoot: false, childPid: 1, procsFiles: [], inner: ['true'] });
    expect(argv).toContain('--preserve-credentials');
  });
});
