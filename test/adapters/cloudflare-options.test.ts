/** Option mapping of the Cloudflare adapter: versions, connection, create refusals, exec requests, file routes, errors. No I/O. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CloudflareBridgeHttpError,
  CloudflareDroppedReadError,
  cloudflareBridgeFeatures,
  cloudflareCapabilitiesFor,
  cloudflareEnvironment,
  createCloudflareSandboxProvider,
  detectCloudflareBridgeVersion,
  mapCloudflareError,
  parseCloudflareMarker,
  planCloudflareConnection,
  planCloudflareCreate,
  planCloudflareExec,
  planCloudflareFileRoute,
  planCloudflareTunnel,
  planCloudflareTunnelPort,
  planCloudflareWriteParts,
} from '../../adapters/cloudflare/index.js';
import { partsOf } from '../../adapters/cloudflare/cloudflare-files.js';
import { exitOf } from '../../adapters/cloudflare/cloudflare-process.js';
import {
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  createSandboxOptionsSchema,
  type CreateSandboxOptions,
  type SandboxWarning,
} from '../../src/kit/index.js';

/** A byte stream of `chunks`, in order. */
const fromStream = (chunks: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
const settingOf = (warning: SandboxWarning) => (warning.type === 'unsupported-setting' ? warning.setting : undefined);
const plan = (options: CreateSandboxOptions) => planCloudflareCreate(createSandboxOptionsSchema.parse(options));

describe('cloudflare bridge versions', () => {
  const document = (paths: string[]) => ({
    openapi: '3.1.0',
    info: { version: 'x' },
    paths: Object.fromEntries(paths.map((path) => [path, {}])),
  });

  it('0.13 when the document has the process routes, 0.12 when it has /exec, 0.13 when it has both', () => {
    expect(
      detectCloudflareBridgeVersion(document(['/v1/sandbox', '/v1/sandbox/{id}/processes', '/v1/sandbox/{id}/processes/{processId}'])),
    ).toBe('0.13');
    expect(detectCloudflareBridgeVersion(document(['/v1/sandbox', '/v1/sandbox/{id}/exec', '/v1/sandbox/{id}/session']))).toBe('0.12');
    expect(detectCloudflareBridgeVersion(document(['/v1/sandbox/{id}/exec', '/v1/sandbox/{id}/processes']))).toBe('0.13');
  });

  it('a document with neither shape is unsupported; something that is no document names url', () => {
    expect(() => detectCloudflareBridgeVersion(document(['/v1/sandbox']))).toThrow(SandboxCapabilityUnsupportedError);
    const error = (() => {
      try {
        detectCloudflareBridgeVersion('<html>');
      } catch (caught) {
        return caught;
      }
    })();
    expect(SandboxInvalidArgumentError.isInstance(error) && error.argument).toBe('url');
  });

  it('the capability flags are the same for both versions and say what the bridge cannot do', () => {
    expect(cloudflareCapabilitiesFor('0.12')).toEqual(cloudflareCapabilitiesFor('0.13'));
    const caps = cloudflareCapabilitiesFor('0.12');
    expect(caps.exec).toMatchObject({ stdin: false, kill: true, signals: true, pty: false, streaming: true });
    expect(caps.snapshot).toBe(false);
    expect(caps.tags || caps.list || caps.fromName).toBe(false);
    expect(caps.network.block || caps.limits.cpu || caps.limits.memory || caps.timeouts.lifetime || caps.images.reference).toBe(false);
    expect(Object.isFrozen(caps.exec)).toBe(true);
  });

  it('what differs is in the features: 0.12 output is lossy, its env emulated and its argv bash-quoted', () => {
    expect(cloudflareBridgeFeatures('0.12')).toEqual({ version: '0.12', byteExactOutput: false, execEnv: 'emulated', argv: 'bash-quoted' });
    expect(cloudflareBridgeFeatures('0.13')).toEqual({ version: '0.13', byteExactOutput: true, execEnv: 'native', argv: 'native' });
  });

  it('the provider refuses an unknown version at construction and does no I/O', () => {
    expect(() => createCloudflareSandboxProvider({ version: '0.11' as never })).toThrow(SandboxInvalidArgumentError);
    expect(createCloudflareSandboxProvider({ version: '0.12' }).capabilities).toEqual(cloudflareCapabilitiesFor('0.12'));
  });
});

describe('cloudflare connection', () => {
  it('options win over the environment; a trailing slash is dropped', () => {
    expect(
      planCloudflareConnection({ url: 'https://b.example.workers.dev/', token: 't' }, { [cloudflareEnvironment.url]: 'https://other' }),
    ).toEqual({
      url: 'https://b.example.workers.dev',
      token: 't',
    });
    expect(
      planCloudflareConnection({}, { [cloudflareEnvironment.url]: 'http://127.0.0.1:9/base/', [cloudflareEnvironment.token]: 'k' }),
    ).toEqual({
      url: 'http://127.0.0.1:9/base',
      token: 'k',
    });
  });

  it('a missing URL or token is SandboxInvalidArgumentError naming the option and its variable', () => {
    const failure = (options: { url?: string; token?: string }, environment: Record<string, string>) => {
      try {
        planCloudflareConnection(options, environment);
      } catch (error) {
        return error as SandboxInvalidArgumentError;
      }
      throw new Error('no error');
    };
    const noUrl = failure({ token: 't' }, {});
    expect(noUrl.argument).toBe('url');
    expect(noUrl.message).toContain('CLOUDFLARE_SANDBOX_BRIDGE_URL');
    const noToken = failure({ url: 'https://x' }, {});
    expect(noToken.argument).toBe('token');
    expect(noToken.message).toContain('CLOUDFLARE_SANDBOX_BRIDGE_TOKEN');
    expect(failure({ url: 'ftp://x', token: 't' }, {}).argument).toBe('url');
    expect(failure({ url: 'not a url', token: 't' }, {}).argument).toBe('url');
  });

  it('create and fromId reject with that error when nothing is configured', async () => {
    const saved = { url: process.env[cloudflareEnvironment.url], token: process.env[cloudflareEnvironment.token] };
    delete process.env[cloudflareEnvironment.url];
    delete process.env[cloudflareEnvironment.token];
    try {
      const provider = createCloudflareSandboxProvider();
      await expect(provider.create()).rejects.toMatchObject({ name: 'SandboxInvalidArgumentError', argument: 'url' });
      await expect(provider.fromId('abcdefg')).rejects.toMatchObject({ name: 'SandboxInvalidArgumentError', argument: 'url' });
    } finally {
      if (saved.url !== undefined) process.env[cloudflareEnvironment.url] = saved.url;
      if (saved.token !== undefined) process.env[cloudflareEnvironment.token] = saved.token;
    }
  });
});

describe('cloudflare create options', () => {
  it('defaults: no workdir, no env, no ports, no warnings', () => {
    expect(plan({})).toEqual({ entrypoint: undefined, workdir: undefined, env: {}, ports: [], warnings: [] });
  });

  it('what the bridge fixes per deploy is SandboxCapabilityUnsupportedError naming the capability', () => {
    const cases: Array<[CreateSandboxOptions, string]> = [
      [{ image: 'debian:bookworm' }, 'images.reference'],
      [{ cpu: 1 }, 'limits.cpu'],
      [{ memoryMiB: 512 }, 'limits.memory'],
      [{ network: 'block' }, 'network.block'],
      [{ network: { allowDomains: ['example.com'] } }, 'network.allowDomains'],
      [{ timeoutMs: 60_000 }, 'timeouts.lifetime'],
      [{ idleTimeoutMs: 60_000 }, 'timeouts.idle'],
      [{ gpu: 'any' }, 'gpu'],
      [{ volumes: { '/mnt': 'v' } }, 'volumes'],
    ];
    for (const [options, capability] of cases) {
      expect(() => plan(options), capability).toThrow(SandboxCapabilityUnsupportedError);
      try {
        plan(options);
      } catch (error) {
        expect((error as SandboxCapabilityUnsupportedError).capability).toBe(capability);
      }
    }
  });

  it('tags, a name and secrets are kept as far as the bridge allows, each with a warning', () => {
    const result = plan({ tags: { a: '1' }, name: 'n', secrets: { S: 'x' }, env: { E: 'y' } });
    expect(result.warnings.map(settingOf).sort()).toEqual(['name', 'secrets', 'tags']);
    expect(result.env).toEqual({ S: 'x', E: 'y' });
  });

  it('ports: 1024 to 65535 but 3000; an unencrypted ask is a warning (tunnels are https)', () => {
    expect(plan({ ports: [8080, { port: 9000, encrypted: false }] }).ports).toEqual([8080, 9000]);
    expect(plan({ ports: [{ port: 9000, encrypted: false }] }).warnings.map(settingOf)).toEqual(['ports.encrypted']);
    for (const port of [80, 1023, 3000]) expect(() => planCloudflareTunnelPort(port)).toThrow(SandboxInvalidArgumentError);
    expect(planCloudflareTunnelPort(65535)).toBe(65535);
  });

  it('a string command runs through sh -c; an unknown providerOptions key is refused', () => {
    expect(plan({ command: 'sleep 1' }).entrypoint).toEqual(['/bin/sh', '-c', 'sleep 1']);
    expect(plan({ command: ['a', 'b c'] }).entrypoint).toEqual(['a', 'b c']);
    expect(() => plan({ providerOptions: { cloudflare: { instanceType: 'basic' } } })).toThrow(SandboxInvalidArgumentError);
  });

  it('a tunnel record becomes the contract’s tunnel, https on 443 by default', () => {
    expect(planCloudflareTunnel(8080, { url: 'https://abc.trycloudflare.com' })).toEqual({
      port: 8080,
      url: 'https://abc.trycloudflare.com',
      host: 'abc.trycloudflare.com',
      hostPort: 443,
      encrypted: true,
    });
    expect(planCloudflareTunnel(8080, { url: 'http://abc.trycloudflare.localhost:4000/' })).toMatchObject({
      hostPort: 4000,
      encrypted: false,
    });
  });
});

describe('cloudflare exec requests', () => {
  it('0.13 passes argv, env and the backstop timeout as the bridge’s own fields', () => {
    expect(planCloudflareExec('0.13', ['a', 'b'], { env: { K: 'v' }, backstopMs: 5000 })).toEqual({
      version: '0.13',
      body: { argv: ['a', 'b'], env: { K: 'v' }, timeout: 5000 },
    });
    expect(planCloudflareExec('0.13', ['a'], {})).toEqual({ version: '0.13', body: { argv: ['a'] } });
  });

  it('0.12 has no env field: env K=V runs the argv, which keeps every byte of the values', () => {
    const request = planCloudflareExec('0.12', ['printenv', 'K'], { env: { K: "it's $HOME\nand ünï = x" }, backstopMs: 1000 });
    expect(request).toEqual({ version: '0.12', body: { argv: ['env', "K=it's $HOME\nand ünï = x", 'printenv', 'K'], timeout_ms: 1000 } });
    const [program, ...args] = request.body.argv;
    expect(spawnSync(program!, args, { encoding: 'utf8' }).stdout).toBe("it's $HOME\nand ünï = x\n");
    expect(planCloudflareExec('0.12', ['true'], {}).body).toEqual({ argv: ['true'] });
  });

  it('exit events: 0.13 names the signal by number, 0.12 has the shell’s 128+n', () => {
    expect(exitOf({ type: 'exit', exitCode: 0, signal: 9 })).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(exitOf({ type: 'exit', exitCode: 143 })).toEqual({ exitCode: 143, signal: 'SIGTERM' });
    expect(exitOf({ type: 'exit', exitCode: 3 })).toEqual({ exitCode: 3, signal: undefined });
  });
});

describe('cloudflare file routes', () => {
  it('paths under /workspace go straight through, encoded per segment', () => {
    expect(planCloudflareFileRoute('/workspace/a.txt')).toEqual({ kind: 'direct', route: 'workspace/a.txt' });
    expect(planCloudflareFileRoute('/workspace/a b/%c?#')).toEqual({ kind: 'direct', route: 'workspace/a%20b/%25c%3F%23' });
  });

  it('paths elsewhere, and paths the bridge would normalise, are staged', () => {
    for (const path of ['/tmp/x', '/workspacex/a', '/workspace/../etc/passwd', '/workspace/./a', '/workspace//a', '/'])
      expect(planCloudflareFileRoute(path), path).toEqual({ kind: 'staged' });
  });

  it('writes above the bridge’s 32 MiB are split in parts', () => {
    expect(planCloudflareWriteParts(10)).toEqual([10]);
    expect(planCloudflareWriteParts(32 * 1024 * 1024)).toEqual([32 * 1024 * 1024]);
    expect(planCloudflareWriteParts(25, 10)).toEqual([10, 10, 5]);
  });

  it('parts of bytes and of streams have the part size, the last one shorter, and nothing for empty data', async () => {
    const collect = async (data: Uint8Array | ReadableStream<Uint8Array>) => {
      const sizes: number[] = [];
      const bytes: number[] = [];
      for await (const part of partsOf(data, 4)) {
        sizes.push(part.byteLength);
        bytes.push(...part);
      }
      return { sizes, bytes };
    };
    const source = Uint8Array.from({ length: 10 }, (_, index) => index);
    expect(await collect(source)).toEqual({ sizes: [4, 4, 2], bytes: [...source] });
    const stream = fromStream([source.subarray(0, 3), source.subarray(3, 9), source.subarray(9)]);
    expect(await collect(stream)).toEqual({ sizes: [4, 4, 2], bytes: [...source] });
    expect(await collect(new Uint8Array(0))).toEqual({ sizes: [], bytes: [] });
    expect(await collect(fromStream([]))).toEqual({ sizes: [], bytes: [] });
  });

  it('the marker is read only when it is this sandbox’s', () => {
    const marker = { sandboxId: 'abc', workdir: '/w', env: { A: '1' }, ports: [8080], createdAt: 1 };
    expect(parseCloudflareMarker(JSON.stringify(marker), 'abc')).toEqual(marker);
    expect(parseCloudflareMarker(JSON.stringify(marker), 'other')).toBeUndefined();
    expect(parseCloudflareMarker('', 'abc')).toBeUndefined();
    expect(parseCloudflareMarker('{not json', 'abc')).toBeUndefined();
    expect(parseCloudflareMarker('{"sandboxId":"abc"}', 'abc')).toBeUndefined();
  });
});

describe('cloudflare errors', () => {
  const http = (status: number, code: string | undefined, detail = 'x') => new CloudflareBridgeHttpError(status, code, detail, 'GET /v1/x');

  it('keeps the bridge’s error as cause', () => {
    const cause = http(401, 'unauthorized', 'Unauthorized');
    const mapped = mapCloudflareError(cause, { operation: 'create' });
    expect(SandboxAuthenticationError.isInstance(mapped)).toBe(true);
    expect(mapped.cause).toBe(cause);
    expect(mapped.message).toContain('CLOUDFLARE_SANDBOX_BRIDGE_TOKEN');
  });

  it('maps the bridge’s codes before its statuses', () => {
    const map = (error: unknown, context = {}) => mapCloudflareError(error, { operation: 'op', sandboxId: 'abc', ...context });
    expect(SandboxNotFoundError.isInstance(map(http(400, 'invalid_request', 'Invalid sandbox ID format')))).toBe(true);
    // 403 is a path or cwd outside /workspace, not a bad token.
    const outside = map(http(403, 'invalid_request', 'cwd must resolve to a location within /workspace'));
    expect(SandboxInvalidArgumentError.isInstance(outside) && outside.argument).toBe('cwd');
    const missing = map(http(404, 'workspace_read_not_found'), { path: '/workspace/a' });
    expect(SandboxFileNotFoundError.isInstance(missing) && missing.path).toBe('/workspace/a');
    expect(SandboxNotFoundError.isInstance(map(http(404, 'not_found', 'Process not found')))).toBe(true);
    expect(SandboxCapabilityUnsupportedError.isInstance(map(http(404, undefined, '404 Not Found')))).toBe(true);
    const tooLarge = map(http(413, 'payload_too_large'));
    expect(SandboxInvalidArgumentError.isInstance(tooLarge) && tooLarge.argument).toBe('data');
    const capacity = map(http(503, 'capacity_exceeded'));
    expect(SandboxProviderError.isInstance(capacity) && capacity.retryable).toBe(true);
    const tunnel = map(http(502, 'tunnel_error'));
    expect(SandboxProviderError.isInstance(tunnel) && tunnel.retryable).toBe(false);
    const badTar = map(http(502, 'workspace_archive_write_error'), { operation: 'hydrateWorkspace' });
    expect(SandboxInvalidArgumentError.isInstance(badTar) && badTar.argument).toBe('archive');
    expect(SandboxProviderError.isInstance(map(http(500, undefined)))).toBe(true);
  });

  it('a dropped read is a missing file; a reset connection is retryable', () => {
    const dropped = mapCloudflareError(new CloudflareDroppedReadError('GET /x', { cause: new Error('other side closed') }), {
      operation: 'files.read',
      path: '/workspace/x',
    });
    expect(SandboxFileNotFoundError.isInstance(dropped)).toBe(true);
    const reset = mapCloudflareError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), { operation: 'exec' });
    expect(SandboxProviderError.isInstance(reset) && reset.retryable).toBe(true);
  });
});
