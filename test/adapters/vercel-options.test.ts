/** Option mapping of the Vercel adapter: credentials, units, limits, refusals, commands, tunnels and errors. No I/O. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { APIError, StreamError } from '@vercel/sandbox';
import {
  createVercelSandboxProvider,
  mapVercelError,
  planVercelCreate,
  vercelApiFetch,
  planVercelCredentials,
  planVercelExec,
  planVercelExtension,
  planVercelListFilter,
  planVercelNetwork,
  planVercelNetworkUpdate,
  planVercelResources,
  planVercelTags,
  planVercelTunnel,
  vercelCapabilities,
  vercelExitStatus,
  vercelMaxPorts,
} from '../../adapters/vercel/index.js';
import { checkVercelSnapshot, vercelOuterScript } from '../../adapters/vercel/vercel-options.js';
import { forEachPart, joinPartsScript } from '../../adapters/vercel/vercel-files.js';
import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  createSandboxOptionsSchema,
  parseOptions,
  wrapArgv,
  type CreateSandboxOptions,
  type SandboxWarning,
} from '../../src/kit/index.js';

const parse = (options: CreateSandboxOptions) =>
  parseOptions(createSandboxOptionsSchema, options, { provider: 'vercel', what: 'create options' });
const plan = (options: CreateSandboxOptions = {}) => planVercelCreate(parse(options));
const invalid = (argument: string) => (error: unknown) => SandboxInvalidArgumentError.isInstance(error) && error.argument === argument;
const unsupported = (capability: string) => (error: unknown) =>
  SandboxCapabilityUnsupportedError.isInstance(error) && error.capability === capability;

describe('credentials', () => {
  it('takes token, teamId and projectId from the options before the environment', () => {
    const env = { VERCEL_TOKEN: 'env-token', VERCEL_TEAM_ID: 'env-team', VERCEL_PROJECT_ID: 'env-project' };
    expect(planVercelCredentials({}, env)).toEqual({ token: 'env-token', teamId: 'env-team', projectId: 'env-project' });
    expect(planVercelCredentials({ token: 't', teamId: 'team', projectId: 'p' }, env)).toEqual({
      token: 't',
      teamId: 'team',
      projectId: 'p',
    });
    expect(planVercelCredentials({ teamId: 'team' }, env)).toEqual({ token: 'env-token', teamId: 'team', projectId: 'env-project' });
  });

  it('a token without its team or project names what is missing', () => {
    expect(() => planVercelCredentials({ token: 't' }, {})).toThrow(/teamId and projectId missing/);
    expect(() => planVercelCredentials({ token: 't', teamId: 'team' }, {})).toSatisfy((run: () => unknown) => {
      try {
        run();
        return false;
      } catch (error) {
        return invalid('projectId')(error) && /VERCEL_PROJECT_ID/.test((error as Error).message);
      }
    });
    // A team and project without the token, even with an OIDC token around: the token is missing.
    expect(() => planVercelCredentials({ teamId: 'team', projectId: 'p' }, { VERCEL_OIDC_TOKEN: 'jwt' })).toThrow(/token missing/);
  });

  it('with no token at all, the OIDC token of the environment, else an authentication error saying what to set', () => {
    expect(planVercelCredentials({}, { VERCEL_OIDC_TOKEN: 'jwt' })).toEqual({ oidc: true });
    let thrown: unknown;
    try {
      planVercelCredentials({}, {});
    } catch (error) {
      thrown = error;
    }
    expect(SandboxAuthenticationError.isInstance(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/VERCEL_TOKEN.*VERCEL_OIDC_TOKEN/);
  });

  it('the provider resolves them at the first call, not at construction', () => {
    const provider = createVercelSandboxProvider({ token: 't' });
    expect(provider.capabilities).toBe(vercelCapabilities);
    expect(() => provider.connection).toThrow(/teamId/);
    expect(createVercelSandboxProvider({ token: 't', teamId: 'team', projectId: 'p' }).connection).toEqual({
      token: 't',
      teamId: 'team',
      projectId: 'p',
    });
  });
});

describe('apiUrl', () => {
  it("rewrites only the SDK's base, path and query kept, and checks the URLs at construction", async () => {
    const seen: string[] = [];
    const inner = (async (input: string | URL | Request) => {
      seen.push(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      return new Response('{}');
    }) as typeof fetch;
    const rewriting = vercelApiFetch('http://127.0.0.1:9/api/', inner);
    await rewriting('https://vercel.com/api/v2/sandboxes?teamId=t');
    await rewriting(new Request('https://vercel.com/api/v2/sandboxes/x', { method: 'POST', body: '{}' }));
    await rewriting('https://sb-1.vercel.run/');
    expect(seen).toEqual([
      'http://127.0.0.1:9/api/v2/sandboxes?teamId=t',
      'http://127.0.0.1:9/api/v2/sandboxes/x',
      'https://sb-1.vercel.run/',
    ]);
    expect(() => createVercelSandboxProvider({ apiUrl: 'not a url' })).toThrow(SandboxInvalidArgumentError);
    expect(() => createVercelSandboxProvider({ tunnelBaseUrl: 'nope' })).toThrow(SandboxInvalidArgumentError);
  });
});

describe('create plan', () => {
  it('defaults: 5 minutes of lifetime, no name, no image (Vercel picks its own), no ports', () => {
    const created = plan();
    expect(created.params).toEqual({ timeout: 300_000 });
    expect(created.timeoutMs).toBe(300_000);
    expect(created).toMatchObject({ entrypoint: undefined, workdir: undefined, ports: [], sudo: false, warnings: [] });
  });

  it('maps name, image, a snapshot, env, secrets, tags, ports, region and persistence', () => {
    const created = plan({
      name: 'box-1',
      image: 'vercel/sandbox/universal',
      env: { A: '1' },
      secrets: { S: 'secret' },
      tags: { team: 'infra' },
      ports: [3000, { port: 8080, encrypted: true }],
      timeoutMs: 60_000,
      workdir: '/workspace',
      command: 'node server.js',
      providerOptions: { vercel: { region: 'fra1', persistent: false, sudo: true } },
    });
    expect(created.params).toEqual({
      name: 'box-1',
      image: 'vercel/sandbox/universal',
      timeout: 60_000,
      ports: [3000, 8080],
      env: { S: 'secret', A: '1' },
      tags: { team: 'infra' },
      region: 'fra1',
      persistent: false,
    });
    expect(created.entrypoint).toEqual(['/bin/sh', '-c', 'node server.js']);
    expect(created).toMatchObject({ workdir: '/workspace', ports: [3000, 8080], sudo: true });
    expect(created.warnings.map((warning) => (warning.type === 'unsupported-setting' ? warning.setting : warning.type))).toEqual([
      'secrets',
    ]);
    expect(plan({ image: { type: 'snapshot', provider: 'vercel', id: 'snap_1' } }).params.source).toEqual({
      type: 'snapshot',
      snapshotId: 'snap_1',
    });
  });

  it('refuses what Vercel cannot do, by capability', () => {
    expect(() => plan({ volumes: { '/data': 'drive' } })).toThrow(expect.objectContaining({ capability: 'volumes' }));
    expect(() => plan({ gpu: 'A100' })).toSatisfy(throws(unsupported('gpu')));
    expect(() => plan({ idleTimeoutMs: 1000 })).toSatisfy(throws(unsupported('timeouts.idle')));
    expect(() => plan({ pidsLimit: 100 })).toSatisfy(throws(unsupported('limits.pids')));
    expect(() => plan({ image: { base: 'node:22', commands: ['npm i'] } })).toSatisfy(throws(unsupported('images.build')));
    expect(() => plan({ image: { type: 'snapshot', provider: 'e2b', id: 'x' } })).toSatisfy(throws(invalid('image')));
    expect(() => plan({ timeoutMs: 5 * 60 * 60 * 1000 + 1 })).toSatisfy(throws(invalid('timeoutMs')));
    expect(() => plan({ providerOptions: { vercel: { sudoo: true } } })).toThrow(SandboxInvalidArgumentError);
  });

  it(`refuses more than ${vercelMaxPorts} ports and more than 5 tags, naming the field`, () => {
    const ports = Array.from({ length: vercelMaxPorts + 1 }, (_, index) => 3000 + index);
    expect(() => plan({ ports })).toSatisfy(throws(invalid('ports')));
    expect(plan({ ports: ports.slice(0, vercelMaxPorts) }).ports).toHaveLength(vercelMaxPorts);
    const tags = Object.fromEntries(Array.from({ length: 6 }, (_, index) => [`k${index}`, 'v']));
    expect(() => plan({ tags })).toSatisfy(throws(invalid('tags')));
    expect(() => planVercelTags(tags)).toSatisfy(throws(invalid('tags')));
    expect(planVercelTags({})).toBeUndefined();
  });

  it('an unencrypted port is a warning: Vercel serves every port over https', () => {
    expect(plan({ ports: [{ port: 80, encrypted: false }] }).warnings).toEqual([
      expect.objectContaining({ type: 'unsupported-setting', setting: 'ports.encrypted' }),
    ]);
  });
});

describe('resources: vCPUs, with 2048 MiB of memory each', () => {
  it('cpu is whole vCPUs (a fraction rounds up, with a warning)', () => {
    expect(planVercelResources(undefined, undefined)).toBeUndefined();
    expect(planVercelResources(2, undefined)).toBe(2);
    const warnings: SandboxWarning[] = [];
    expect(planVercelResources(1.5, undefined, warnings)).toBe(2);
    expect(warnings).toEqual([expect.objectContaining({ setting: 'cpu' })]);
    expect(plan({ cpu: 4 }).params.resources).toEqual({ vcpus: 4 });
  });

  it('memoryMiB is accepted when it is what the vCPUs have, and picks them alone', () => {
    expect(planVercelResources(2, 4096)).toBe(2);
    expect(planVercelResources(undefined, 8192)).toBe(4);
    expect(plan({ memoryMiB: 2048 }).params.resources).toEqual({ vcpus: 1 });
  });

  it('any other memory, or a vCPU count outside 1-8, fails clearly', () => {
    expect(() => planVercelResources(1, 512)).toSatisfy(throws(invalid('memoryMiB')));
    expect(() => planVercelResources(1, 512)).toThrow(/2048 MiB per vCPU.*make it 2048/);
    expect(() => planVercelResources(undefined, 3000)).toSatisfy(throws(invalid('memoryMiB')));
    expect(() => planVercelResources(9, undefined)).toSatisfy(throws(invalid('cpu')));
    expect(() => planVercelResources(undefined, 9 * 2048)).toSatisfy(throws(invalid('memoryMiB')));
  });
});

describe('network policy', () => {
  it('allow is Vercel default, block is deny-all, an empty allowlist too', () => {
    expect(planVercelNetwork(undefined)).toBeUndefined();
    expect(planVercelNetwork('allow')).toBeUndefined();
    expect(planVercelNetwork('block')).toBe('deny-all');
    expect(planVercelNetwork({ allowCidrs: [], allowDomains: [] })).toBe('deny-all');
  });

  it('domains and subnets go to allow and subnets.allow; denied subnets to subnets.deny', () => {
    expect(planVercelNetwork({ allowCidrs: ['10.0.0.0/8'], allowDomains: ['*.npmjs.org', 'github.com'] })).toEqual({
      allow: ['*.npmjs.org', 'github.com'],
      subnets: { allow: ['10.0.0.0/8'] },
    });
    expect(planVercelNetwork({ allowCidrs: ['192.0.2.0/24'], allowDomains: [] })).toEqual({
      allow: [],
      subnets: { allow: ['192.0.2.0/24'] },
    });
    expect(planVercelNetwork({ allowCidrs: [], allowDomains: ['example.com'] }, ['169.254.0.0/16'])).toEqual({
      allow: ['example.com'],
      subnets: { deny: ['169.254.0.0/16'] },
    });
    expect(planVercelNetwork('allow', ['10.0.0.0/8'])).toEqual({ allow: ['*'], subnets: { deny: ['10.0.0.0/8'] } });
    expect(plan({ network: 'allow', providerOptions: { vercel: { denyCidrs: ['10.0.0.0/8'] } } }).params.networkPolicy).toEqual({
      allow: ['*'],
      subnets: { deny: ['10.0.0.0/8'] },
    });
    expect(() => plan({ providerOptions: { vercel: { denyCidrs: ['not a cidr'] } } })).toThrow(SandboxInvalidArgumentError);
  });

  it('an update spells every policy out: allow is allow-all', () => {
    expect(planVercelNetworkUpdate('allow')).toBe('allow-all');
    expect(planVercelNetworkUpdate('block')).toBe('deny-all');
    expect(planVercelNetworkUpdate({ allowCidrs: [], allowDomains: ['a.test'] })).toEqual({ allow: ['a.test'] });
  });
});

describe('list filter', () => {
  it('sends one tag (Vercel filters by one) and matches the rest here', () => {
    expect(planVercelListFilter(undefined)).toEqual({ server: undefined, client: {} });
    expect(planVercelListFilter({ a: '1' })).toEqual({ server: { a: '1' }, client: {} });
    expect(planVercelListFilter({ a: '1', b: '2', c: '3' })).toEqual({ server: { a: '1' }, client: { b: '2', c: '3' } });
  });
});

describe('exec plan', () => {
  it('passes the argv as cmd + args under the outer shell, detached, with env and sudo', () => {
    const argv = ['printf', '%s|', 'with space', "it's", ''];
    expect(planVercelExec(argv)).toEqual({ cmd: '/bin/sh', args: ['-c', vercelOuterScript, 'sandport', ...argv], detached: true });
    expect(planVercelExec(['true'], { env: { A: 'b' }, sudo: true })).toMatchObject({ env: { A: 'b' }, sudo: true });
    expect(planVercelExec(['true'], { env: {}, sudo: false })).not.toHaveProperty('env');
    expect(() => planVercelExec([])).toSatisfy(throws(invalid('command')));
  });

  it('in a real sh, the argv arrives byte for byte and a death by signal is 128 + n', () => {
    const argv = ['printf', '%s|', 'with space', "it's", '$HOME `id`', 'new\nline', 'ünï ✓', ''];
    const printed = spawnSync(planVercelExec(argv).cmd, planVercelExec(argv).args, { encoding: 'utf8' });
    expect(printed.stdout).toBe("with space|it's|$HOME `id`|new\nline|ünï ✓||");
    const wrapped = planVercelExec(wrapArgv('xtest', ['/bin/sh', '-c', 'kill -TERM $$'], { stdinNull: true }));
    const killed = spawnSync(wrapped.cmd, wrapped.args, { encoding: 'utf8' });
    expect(killed.status).toBe(143);
    expect(vercelExitStatus(143)).toEqual({ exitCode: 143, signal: 'SIGTERM' });
    expect(vercelExitStatus(3)).toEqual({ exitCode: 3, signal: undefined });
  });
});

describe('tunnels and timeouts', () => {
  it("a port's tunnel is Vercel's https domain, or the emulator's edge with the subdomain kept", () => {
    expect(planVercelTunnel(3000, 'https://sb-abc.vercel.run')).toEqual({
      port: 3000,
      url: 'https://sb-abc.vercel.run',
      host: 'sb-abc.vercel.run',
      hostPort: 443,
      encrypted: true,
    });
    expect(planVercelTunnel(3000, 'https://sb-abc.vercel.run', 'http://vercel.localhost:4567')).toEqual({
      port: 3000,
      url: 'http://sb-abc.vercel.localhost:4567',
      host: 'sb-abc.vercel.localhost',
      hostPort: 4567,
      encrypted: false,
    });
  });

  it('extendTimeout asks Vercel for what the new deadline adds; a shorter one adds nothing', () => {
    expect(planVercelExtension(600_000, 100_000)).toBe(500_000);
    expect(planVercelExtension(60_000, 100_000)).toBe(0);
    expect(planVercelExtension(1000, 0)).toBe(1000);
  });

  it("deleteSnapshot refuses another provider's snapshot", () => {
    expect(checkVercelSnapshot({ type: 'snapshot', provider: 'vercel', id: 'snap_1' })).toBe('snap_1');
    expect(() => checkVercelSnapshot({ type: 'snapshot', provider: 'modal', id: 'im-1' })).toSatisfy(throws(invalid('snapshot')));
    expect(() => checkVercelSnapshot('snap_1')).toSatisfy(throws(invalid('snapshot')));
  });
});

describe('errors', () => {
  const apiError = (status: number, code?: string) =>
    new APIError(new Response(null, { status }), {
      message: `HTTP ${status}`,
      json: code ? { error: { code, message: `because ${code}` } } : undefined,
    });

  it('maps statuses to the contract, keeping the SDK error as cause', () => {
    const notFound = apiError(404, 'not_found');
    const mapped = mapVercelError(notFound, { operation: 'fromId', sandboxId: 'sb' });
    expect(SandboxNotFoundError.isInstance(mapped)).toBe(true);
    expect(mapped.cause).toBe(notFound);
    expect(SandboxNotFoundError.isInstance(mapVercelError(apiError(410, 'sandbox_stopped'), { operation: 'exec' }))).toBe(true);
    expect(SandboxFileNotFoundError.isInstance(mapVercelError(apiError(404), { operation: 'files.read', path: '/x' }))).toBe(true);
    expect(SandboxAlreadyExistsError.isInstance(mapVercelError(apiError(409, 'sandbox_exists'), { operation: 'create' }))).toBe(true);
    const auth = mapVercelError(apiError(403, 'forbidden'), { operation: 'create' });
    expect(SandboxAuthenticationError.isInstance(auth)).toBe(true);
    expect(auth.message).toMatch(/forbidden/);
    expect(mapVercelError(apiError(400, 'bad_request'), { operation: 'create', argument: 'create options' })).toSatisfy(
      invalid('create options'),
    );
    const limited = mapVercelError(apiError(429), { operation: 'create' });
    expect(SandboxProviderError.isInstance(limited) && limited.retryable).toBe(true);
    const stopping = mapVercelError(apiError(422, 'sandbox_stopping'), { operation: 'exec' });
    expect(SandboxProviderError.isInstance(stopping) && stopping.retryable).toBe(true);
  });

  it('maps stream errors, missing credentials and connection failures', () => {
    const early = mapVercelError(new StreamError('stream_ended_early', 'ended', 'sess'), { operation: 'exec' });
    expect(SandboxProviderError.isInstance(early) && early.retryable).toBe(true);
    expect(
      SandboxAuthenticationError.isInstance(
        mapVercelError(new Error('Missing credentials: set VERCEL_OIDC_TOKEN'), { operation: 'create' }),
      ),
    ).toBe(true);
    const reset = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });
    const connection = mapVercelError(reset, { operation: 'list' });
    expect(SandboxProviderError.isInstance(connection) && connection.retryable).toBe(true);
    const already = new SandboxNotFoundError({ message: 'x', provider: 'vercel' });
    expect(mapVercelError(already, { operation: 'x' })).toBe(already);
  });
});

describe('writes in parts', () => {
  it('cuts a stream into parts of the size, the last one shorter, holding one at a time', async () => {
    const sizes: number[] = [];
    const contents: number[] = [];
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let index = 0; index < 5; index++) controller.enqueue(new Uint8Array(3).fill(index));
        controller.close();
      },
    });
    await forEachPart(source, 4, async (part) => {
      sizes.push(part.byteLength);
      contents.push(...part);
    });
    expect(sizes).toEqual([4, 4, 4, 3]);
    expect(contents).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
  });

  it('the join script puts the parts together over the target and keeps an existing mode', () => {
    const script = `dir=$(mktemp -d); mkdir "$dir/stage"; printf ab > "$dir/stage/00000000"; printf cd > "$dir/stage/00000001";
      printf old > "$dir/target"; chmod 600 "$dir/target";
      sh -c "$1" join "$dir/sub/../target" "$dir/stage" "" || exit 9; cat "$dir/target"; stat -c %a "$dir/target"; [ -e "$dir/stage" ] && echo left;
      mkdir "$dir/stage"; sh -c "$1" join "$dir/new/empty" "$dir/stage" 755; wc -c < "$dir/new/empty"; stat -c %a "$dir/new/empty";
      mkdir "$dir/stage" "$dir/adir"; sh -c "$1" join "$dir/adir" "$dir/stage" ""; echo "exit $?"; rm -rf "$dir"`;
    const result = spawnSync('/bin/sh', ['-c', script, 'test', joinPartsScript], { encoding: 'utf8' });
    expect(result.stdout.split('\n')).toEqual(['abcd600', '0', '755', 'exit 45', '']);
  });
});

function throws(predicate: (error: unknown) => boolean) {
  return (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return predicate(error);
    }
    return false;
  };
}
