/**
 * Unit tests of the Docker provider's option mapping (the pure `planDockerCreate`), its error
 * mapping, and the provider calls around it against a recording fake of dockerode: no engine
 * needed, so they run everywhere.
 */
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { createDockerSandboxProvider, dockerCreateOptionsSchema, mapDockerError, planDockerCreate } from '../../adapters/docker/index.js';
import {
  SandboxAlreadyExistsError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  createSandboxOptionsSchema,
  parseOptions,
  type CreateSandboxOptions,
} from '../../src/kit/index.js';

type ContainerOptions = Docker.ContainerCreateOptions;

/** A dockerode stand-in that records every call and the options of `createContainer`. */
function fakeDocker(runtimes: string[] = ['runc'], existingNetwork?: { Driver: string; Options: Record<string, string> }) {
  const calls: string[] = [];
  const created: ContainerOptions[] = [];
  const networks: Array<Record<string, unknown>> = [];
  let network = existingNetwork;
  const docker = {
    getNetwork: (name: string) => ({
      inspect: async () => {
        calls.push(`network ${name}`);
        if (!network) throw Object.assign(new Error('network not found'), { statusCode: 404 });
        return network;
      },
    }),
    createNetwork: async (options: { Driver: string; Options: Record<string, string> }) => {
      calls.push('createNetwork');
      networks.push(options);
      network = { Driver: options.Driver, Options: options.Options };
    },
    modem: {},
    info: async () => {
      calls.push('info');
      return { Runtimes: Object.fromEntries(runtimes.map((name) => [name, {}])) };
    },
    getImage: (name: string) => ({
      inspect: async () => {
        calls.push(`image ${name}`);
        return { Id: 'sha256:fake' };
      },
    }),
    listContainers: async () => {
      calls.push('listContainers');
      return [];
    },
    createContainer: async (options: ContainerOptions) => {
      calls.push('createContainer');
      created.push(options);
      return {
        id: 'c0ffee',
        start: async () => {
          calls.push('start');
          throw Object.assign(new Error('start refused by the fake engine'), { statusCode: 400 });
        },
        remove: async () => void calls.push('remove'),
      };
    },
  };
  return { docker: docker as unknown as Docker, calls, created, networks };
}

/** The engine's create options for `options`, as the provider would send them (no I/O). */
function mapped(options: CreateSandboxOptions): ContainerOptions {
  const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'docker', what: 'create options' });
  const dockerOptions = parseOptions(dockerCreateOptionsSchema, parsed.providerOptions?.docker, {
    provider: 'docker',
    what: 'providerOptions.docker',
  });
  return planDockerCreate(parsed, dockerOptions, { image: 'sandport/base:bookworm', pidsLimit: 1024 }).container;
}

/** Like `mapped`, for a call expected to be refused: resolves with what it threw. */
function refusal(options: CreateSandboxOptions): unknown {
  try {
    mapped(options);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('docker option mapping', () => {
  it('construction does no I/O', () => {
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    expect(provider.id).toBe('docker');
    expect(provider.capabilities.crossProcessLookup).toBe(true);
    expect(fake.calls).toEqual([]);
  });

  it('defaults: hardened host config, bridge network, pids limit, workdir, sandport labels', async () => {
    const options = mapped({});
    const host = options.HostConfig!;
    expect(options.Image).toBe('sandport/base:bookworm');
    expect(options.WorkingDir).toBe('/workspace');
    expect(host.Init).toBe(true);
    expect(host.Privileged ?? false).toBe(false);
    expect(host.CapDrop).toEqual(['ALL']);
    for (const capability of host.CapAdd ?? [])
      expect(['SYS_ADMIN', 'NET_ADMIN', 'NET_RAW', 'SYS_PTRACE', 'SYS_MODULE', 'ALL']).not.toContain(capability);
    expect(host.SecurityOpt).toContain('no-new-privileges');
    expect(host.NetworkMode).toBe('sandport-isolated');
    expect(host.PidsLimit).toBe(1024);
    expect(host.Memory).toBeUndefined();
    expect(host.NanoCpus).toBeUndefined();
    expect(host.PortBindings ?? {}).toEqual({});
    expect(host.Binds ?? []).toEqual([]);
    const labels = options.Labels!;
    expect(labels['dev.sandport.managed']).toBe('true');
    expect(JSON.parse(labels['dev.sandport.tags']!)).toEqual({});
    const created = Number(labels['dev.sandport.created-at']);
    const expires = Number(labels['dev.sandport.expires-at']);
    expect(created).toBeGreaterThan(0);
    // Five minutes, like Modal's default lifetime.
    expect(expires - created).toBeGreaterThanOrEqual(299_000);
    expect(expires - created).toBeLessThanOrEqual(301_000);
  });

  it("network 'block' is NetworkMode none; 'allow' is a bridge without inter-container traffic, never host", async () => {
    expect(mapped({ network: 'block' }).HostConfig!.NetworkMode).toBe('none');
    expect(mapped({ network: 'allow' }).HostConfig!.NetworkMode).toBe('sandport-isolated');
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker, defaultImage: 'img' });
    await expect(provider.create({ network: 'allow' })).rejects.toBeDefined();
    await expect(provider.create({ network: 'allow' })).rejects.toBeDefined();
    expect(fake.created.map((options) => options.HostConfig!.NetworkMode)).toEqual(['sandport-isolated', 'sandport-isolated']);
    // Created once, with inter-container communication off.
    expect(fake.networks).toHaveLength(1);
    expect(fake.networks[0]).toMatchObject({
      Name: 'sandport-isolated',
      Driver: 'bridge',
      Options: { 'com.docker.network.bridge.enable_icc': 'false' },
    });
  });

  it('a container that could not start is removed, never left behind', async () => {
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker, defaultImage: 'sandport/base:bookworm' });
    await expect(provider.create({})).rejects.toBeDefined();
    expect(fake.created).toHaveLength(1);
    expect(fake.created[0]!.Image).toBe('sandport/base:bookworm');
    expect(fake.calls).toContain('start');
    expect(fake.calls).toContain('remove');
  });

  it('published ports need a network; the creator is recorded for the stranded-container sweep', () => {
    const error = refusal({ network: 'block', ports: [8080] });
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
    expect((error as SandboxCapabilityUnsupportedError).capability).toBe('tunnels');
    expect(mapped({}).Labels!['dev.sandport.creator']).toMatch(new RegExp(`:${process.pid}$`));
  });

  it('refuses a same-named network that lets containers reach each other', async () => {
    const fake = fakeDocker(['runc'], { Driver: 'bridge', Options: {} });
    const provider = createDockerSandboxProvider({ docker: fake.docker, defaultImage: 'img' });
    const error = await provider.create({}).catch((caught: unknown) => caught);
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect(fake.created).toEqual([]);
  });

  it('limits: cpu as NanoCpus, memory with equal swap (no swap), pids', async () => {
    const host = mapped({ cpu: 1.5, memoryMiB: 256, pidsLimit: 64 }).HostConfig!;
    expect(host.NanoCpus).toBe(1_500_000_000);
    expect(host.Memory).toBe(256 * 1024 * 1024);
    expect(host.MemorySwap).toBe(256 * 1024 * 1024);
    expect(host.PidsLimit).toBe(64);
  });

  it('ports are published on 127.0.0.1 only, on random host ports', async () => {
    const options = mapped({ ports: [8080, { port: 9000 }] });
    expect(Object.keys(options.ExposedPorts ?? {}).sort()).toEqual(['8080/tcp', '9000/tcp']);
    expect(options.HostConfig!.PortBindings).toEqual({
      '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
      '9000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }],
    });
  });

  it('env, workdir, name and tags reach the container', async () => {
    const options = mapped({ env: { GREETING: 'hi there' }, workdir: '/srv/app', name: 'my-box', tags: { team: 'a', run: '7' } });
    expect(options.Env).toContain('GREETING=hi there');
    expect(options.WorkingDir).toBe('/srv/app');
    expect(options.name).toContain('my-box');
    expect(Object.values(options.Labels!)).toContain('my-box');
    expect(JSON.parse(options.Labels!['dev.sandport.tags']!)).toEqual({ team: 'a', run: '7' });
  });

  it('volumes: a host path is a bind, a name is a named volume, readOnly is honoured', async () => {
    const options = mapped({ volumes: { '/data': { source: '/srv/data', readOnly: true }, '/cache': 'build-cache' } });
    const host = options.HostConfig!;
    // Binds would create a missing host directory silently; Mounts refuse it.
    expect(host.Binds ?? []).toEqual([]);
    const described = [
      ...(host.Binds ?? []).map((bind) => {
        const [source, target, mode] = bind.split(':');
        return { source, target, readOnly: mode === 'ro' };
      }),
      ...(host.Mounts ?? []).map((mount) => ({ source: mount.Source, target: mount.Target, readOnly: mount.ReadOnly ?? false })),
    ].sort((a, b) => a.target!.localeCompare(b.target!));
    expect(described).toEqual([
      { source: 'build-cache', target: '/cache', readOnly: false },
      { source: '/srv/data', target: '/data', readOnly: true },
    ]);
  });

  it('secrets stay out of the container config (inspect and commit would expose them)', async () => {
    const options = mapped({ env: { PLAIN: 'visible' }, secrets: { API_TOKEN: 'hunter2' } });
    expect(options.Env).toContain('PLAIN=visible');
    expect(JSON.stringify(options)).not.toContain('hunter2');
  });

  it('sandport state lives on a tmpfs, which snapshots never capture', async () => {
    const host = mapped({}).HostConfig!;
    expect(Object.keys(host.Tmpfs ?? {})).toEqual(['/.sandport']);
  });

  it('volumes over the root, procfs, sysfs, devices or sandport state are refused before any I/O', async () => {
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    for (const target of ['/', '/proc', '/proc/sys', '/sys', '/dev', '/.sandport']) {
      const error = await provider.create({ volumes: { [target]: '/srv' } }).catch((caught: unknown) => caught);
      expect(SandboxInvalidArgumentError.isInstance(error), target).toBe(true);
      expect((error as SandboxInvalidArgumentError).argument).toBe(`volumes.${target}`);
    }
    expect(fake.calls).toEqual([]);
  });

  it('a bind of a missing host path is an invalid argument, not an engine failure', async () => {
    const fake = fakeDocker();
    const message = 'invalid mount config for type "bind": bind source path does not exist: /no/such/dir';
    (fake.docker as unknown as { createContainer: unknown }).createContainer = async () => {
      throw Object.assign(new Error(`(HTTP code 400) ${message}`), { statusCode: 400, json: { message } });
    };
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    const error = await provider.create({ image: 'x', volumes: { '/data': '/no/such/dir' } }).catch((caught: unknown) => caught);
    expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as SandboxInvalidArgumentError).argument).toBe('volumes');
  });

  it('providerOptions.docker.runtime is used when the engine has it, refused otherwise', async () => {
    expect(mapped({ providerOptions: { docker: { runtime: 'runsc' } } }).HostConfig!.Runtime).toBe('runsc');
    const fake = fakeDocker(['runc']);
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    const error = await provider
      .create({ image: 'x', providerOptions: { docker: { runtime: 'runsc' } } })
      .catch((caught: unknown) => caught);
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
    expect(fake.created).toEqual([]);
  });

  it('settings the engine cannot enforce are refused before any I/O', async () => {
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    const cases: Array<[CreateSandboxOptions, typeof SandboxCapabilityUnsupportedError | typeof SandboxInvalidArgumentError]> = [
      [{ network: { allowCidrs: ['10.0.0.0/8'] } }, SandboxCapabilityUnsupportedError],
      [{ network: { allowDomains: ['example.org'] } }, SandboxCapabilityUnsupportedError],
      [{ gpu: 'any' }, SandboxCapabilityUnsupportedError],
      [{ memoryMiB: 1 }, SandboxInvalidArgumentError],
      [{ workdir: 'relative' }, SandboxInvalidArgumentError],
      [{ providerOptions: { docker: { privileged: true } } }, SandboxInvalidArgumentError],
    ];
    for (const [options, errorClass] of cases) {
      const error = await provider.create(options).catch((caught: unknown) => caught);
      expect(errorClass.isInstance(error), `${JSON.stringify(options)} -> ${String(error)}`).toBe(true);
    }
    expect(fake.calls).toEqual([]);
  });

  it('an aborted signal rejects with its reason before any I/O', async () => {
    const fake = fakeDocker();
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    const controller = new AbortController();
    controller.abort(new Error('caller gave up'));
    await expect(provider.create({ signal: controller.signal })).rejects.toThrow('caller gave up');
    expect(fake.calls).toEqual([]);
  });
});

describe('docker lookups', () => {
  const running = {
    Id: 'abcdef0123456789',
    Config: {
      Labels: {
        'dev.sandport.managed': 'true',
        'dev.sandport.expires-at': String(Date.now() + 60_000),
        'dev.sandport.workdir': '/workspace',
      },
      Env: ['A=1'],
      WorkingDir: '/workspace',
    },
    State: { Running: true },
    NetworkSettings: { Ports: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '32768' }] } },
  };

  function lookupDocker(answers: Array<Error | typeof running>) {
    let inspections = 0;
    const docker = {
      modem: {},
      getContainer: () => ({
        inspect: async () => {
          const answer = answers[Math.min(inspections++, answers.length - 1)]!;
          if (answer instanceof Error) throw answer;
          return answer;
        },
      }),
    };
    return { docker: docker as unknown as Docker, inspections: () => inspections };
  }

  it('an id that cannot name a sandport container is not found before any I/O (it never reaches a URL)', async () => {
    const fake = lookupDocker([running]);
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    for (const id of ['nope', '../x', 'a/../b', '..%2fx', 'abc', `${'a'.repeat(65)}`, 'sandport-../x', 'ABCDEF012345']) {
      const error = await provider.fromId(id).catch((caught: unknown) => caught);
      expect(SandboxNotFoundError.isInstance(error), id).toBe(true);
    }
    expect(fake.inspections()).toBe(0);
  });

  it('fromId retries transient engine failures, reporting each retry', async () => {
    const fake = lookupDocker([
      Object.assign(new Error('(HTTP code 503) busy'), { statusCode: 503 }),
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      running,
    ]);
    const provider = createDockerSandboxProvider({ docker: fake.docker });
    const retries: string[] = [];
    provider.events.on('retry', (event) => retries.push(`${event.operation}#${event.attempt}`));
    const sandbox = await provider.fromId('abcdef012345');
    expect(sandbox.id).toBe('abcdef012345');
    expect(fake.inspections()).toBe(3);
    expect(retries).toEqual(['fromId#1', 'fromId#2']);
    expect(Object.keys(await sandbox.tunnels())).toEqual(['8080']);
  });

  it("fromId does not retry a missing container, nor accept a container that is not sandport's", async () => {
    const missing = lookupDocker([
      Object.assign(new Error('(HTTP code 404) no such container'), { statusCode: 404, json: { message: 'No such container: nope' } }),
    ]);
    const error = await createDockerSandboxProvider({ docker: missing.docker })
      .fromId('0123456789ab')
      .catch((caught: unknown) => caught);
    expect(SandboxNotFoundError.isInstance(error)).toBe(true);
    expect(missing.inspections()).toBe(1);
    const foreign = lookupDocker([{ ...running, Config: { ...running.Config, Labels: {} as typeof running.Config.Labels } }]);
    const notOurs = await createDockerSandboxProvider({ docker: foreign.docker })
      .fromId('abcdef012345')
      .catch((caught: unknown) => caught);
    expect(SandboxNotFoundError.isInstance(notOurs)).toBe(true);
  });
});

describe('docker cleanup', () => {
  it('removes stopped containers and those past the lifetime cap, keeps live ones, touches nothing else', async () => {
    const now = Date.now();
    const day = 24 * 60 * 60 * 1000;
    const container = (id: string, state: string, createdAt: number, expiresAt: number) => ({
      Id: id,
      State: state,
      Created: Math.floor(createdAt / 1000),
      Labels: {
        'dev.sandport.managed': 'true',
        'dev.sandport.created-at': String(createdAt),
        'dev.sandport.expires-at': String(expiresAt),
      },
    });
    const listed = [
      container('stopped', 'exited', now - 60_000, now + 60_000),
      // Its deadline file may say anything (code inside can rewrite it): past the cap it goes.
      container('over-cap', 'running', now - day - 60_000, now - day + 60_000),
      container('live', 'running', now - 60_000, now + 60_000),
    ];
    const filters: unknown[] = [];
    const removed: string[] = [];
    const docker = {
      listContainers: async (options: { filters: unknown }) => {
        filters.push(options.filters);
        return listed;
      },
      getContainer: (id: string) => ({
        remove: async () => void removed.push(id),
        exec: async () => {
          throw new Error(`no exec expected (asked of ${id})`);
        },
      }),
    };
    const provider = createDockerSandboxProvider({ docker: docker as unknown as Docker });
    expect(await provider.cleanup()).toBe(2);
    expect(removed.sort()).toEqual(['over-cap', 'stopped']);
    // Only sandport's own containers are ever listed.
    expect(filters).toEqual([{ label: ['dev.sandport.managed=true'] }]);
  });
});

describe('docker error mapping', () => {
  const engine = (statusCode: number, message: string) =>
    Object.assign(new Error(`(HTTP code ${statusCode}) ${message}`), { statusCode, reason: message, json: { message } });

  it('keeps the engine error as cause and marks the provider', () => {
    const cause = engine(500, 'server error');
    const error = mapDockerError(cause, { operation: 'create' });
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect(error.provider).toBe('docker');
    expect(error.cause).toBe(cause);
  });

  it('transient failures are retryable, the rest are not', () => {
    expect(mapDockerError(engine(500, 'server error'), { operation: 'list' }).retryable).toBe(true);
    expect(mapDockerError(engine(503, 'busy'), { operation: 'list' }).retryable).toBe(true);
    expect(mapDockerError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), { operation: 'list' }).retryable).toBe(true);
    expect(mapDockerError(engine(400, 'bad parameter'), { operation: 'create' }).retryable).toBe(false);
  });

  it('an unreachable engine is a provider error that says so', () => {
    const error = mapDockerError(Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' }), {
      operation: 'create',
    });
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect(error.message).toMatch(/unreachable/i);
  });

  it('404 and 409 become not-found, file-not-found and already-exists', () => {
    expect(
      SandboxNotFoundError.isInstance(mapDockerError(engine(404, 'No such container: abc'), { operation: 'fromId', sandboxId: 'abc' })),
    ).toBe(true);
    const file = mapDockerError(engine(404, 'Could not find the file /nope in container abc'), { operation: 'read', path: '/nope' });
    expect(SandboxFileNotFoundError.isInstance(file)).toBe(true);
    expect((file as SandboxFileNotFoundError).path).toBe('/nope');
    expect(
      SandboxAlreadyExistsError.isInstance(
        mapDockerError(engine(409, 'Conflict. The container name "/sandport-x" is already in use'), { operation: 'create' }),
      ),
    ).toBe(true);
    expect(
      SandboxNotFoundError.isInstance(mapDockerError(engine(409, 'Container abc is not running'), { operation: 'exec', sandboxId: 'abc' })),
    ).toBe(true);
    expect(
      SandboxInvalidArgumentError.isInstance(
        mapDockerError(engine(404, 'No such image: nope:latest'), { operation: 'create', image: 'nope:latest' }),
      ),
    ).toBe(true);
  });
});
