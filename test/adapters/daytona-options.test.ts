/** Option mapping of the Daytona adapter: units, defaults, refusals, commands, stdin relay, log demux, config and errors. No I/O but local shells. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DaytonaAuthenticationError,
  DaytonaConflictError,
  DaytonaError,
  DaytonaFileNotFoundError,
  DaytonaNotFoundError,
  DaytonaRateLimitError,
  DaytonaTimeoutError,
} from '@daytonaio/sdk';
import * as sdk from '@daytonaio/sdk';
import { describe, expect, it } from 'vitest';
import {
  DaytonaLogDemux,
  constructDaytona,
  createDaytonaSandboxProvider,
  daytonaCapabilities,
  daytonaCommandLine,
  daytonaDefaultApiUrl,
  daytonaDefaultImage,
  daytonaLabelKeys,
  daytonaLanguageLabel,
  daytonaLogsUrl,
  daytonaStdinEofLine,
  daytonaStdinLine,
  mapDaytonaError,
  planDaytonaConfig,
  planDaytonaCreate,
  planDaytonaLabels,
  planDaytonaGpu,
  planDaytonaNetwork,
  planDaytonaSessionCommand,
  planDaytonaSetLabels,
  planDaytonaTtl,
  planDaytonaTunnel,
  planDaytonaPauseLabels,
  planDaytonaResumeLabels,
  heldLifetimeFromDaytonaLabels,
  daytonaResumeTtlMinutes,
  tagsFromDaytonaLabels,
} from '../../adapters/daytona/index.js';
import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
  createSandboxOptionsSchema,
  wrapArgv,
  type CreateSandboxOptions,
} from '../../src/kit/index.js';

const plan = (options: CreateSandboxOptions, defaults = {}) => planDaytonaCreate(createSandboxOptionsSchema.parse(options), defaults);

describe('planDaytonaCreate', () => {
  it('defaults: the 5-minute lifetime in minutes, auto-stop off, the managed label, the default snapshot', () => {
    const created = plan({});
    expect(created.params).toEqual({
      labels: { [daytonaLabelKeys.managed]: '1' },
      ttlMinutes: 5,
      autoStopInterval: 0,
      networkBlockAll: false,
      networkAllowList: '',
      domainAllowList: '',
    });
    expect(created.source).toEqual({ kind: 'snapshot', snapshot: undefined });
    expect(created.lifetimeMs).toBe(5 * 60_000);
    expect(created.warnings).toEqual([]);
  });

  it('rounds the lifetime up to whole minutes, with a warning', () => {
    const created = plan({ timeoutMs: 90_000 });
    expect(created.params.ttlMinutes).toBe(2);
    expect(created.lifetimeMs).toBe(120_000);
    expect(created.warnings).toEqual([expect.objectContaining({ setting: 'timeoutMs' })]);
  });

  it('maps the idle timeout to auto-stop minutes and deletes the sandbox when it stops', () => {
    const created = plan({ idleTimeoutMs: 10 * 60_000 });
    expect(created.params.autoStopInterval).toBe(10);
    expect(created.params.autoDeleteInterval).toBe(0);
    expect(plan({ idleTimeoutMs: 61_000 }).params.autoStopInterval).toBe(2);
  });

  it('memory in whole GiB (rounded up with a warning), cpu in whole cores, disk from providerOptions; the default image carries them', () => {
    const created = plan({ memoryMiB: 1536, cpu: 1.5, providerOptions: { daytona: { diskGiB: 4 } } });
    expect(created.params.resources).toEqual({ cpu: 2, memory: 2, disk: 4 });
    expect(created.source).toEqual({ kind: 'image', image: daytonaDefaultImage });
    expect(created.warnings.map((warning) => (warning.type === 'unsupported-setting' ? warning.setting : '')).sort()).toEqual([
      'cpu',
      'memoryMiB',
    ]);
    expect(plan({ memoryMiB: 2048 }).warnings).toEqual([]);
    expect(plan({ memoryMiB: 1024 }, { image: 'my/image:1' }).source).toEqual({ kind: 'image', image: 'my/image:1' });
  });

  it('images: a registry reference, the declarative builder, a snapshot (ours or by name)', () => {
    expect(plan({ image: 'python:3.12' }).source).toEqual({ kind: 'image', image: 'python:3.12' });
    expect(plan({ image: { base: 'python:3.12', commands: ['pip install rich'] } }).source).toEqual({
      kind: 'build',
      base: 'python:3.12',
      commands: ['pip install rich'],
    });
    expect(plan({ image: { type: 'snapshot', provider: 'daytona', id: 'snap-1' } }).source).toEqual({
      kind: 'snapshot',
      snapshot: 'snap-1',
    });
    expect(plan({ providerOptions: { daytona: { snapshot: 'team-snapshot' } } }).source).toEqual({
      kind: 'snapshot',
      snapshot: 'team-snapshot',
    });
  });

  it("refuses resources with a snapshot, an image with a snapshot name, an empty build command, another provider's snapshot", () => {
    expect(() => plan({ image: { type: 'snapshot', provider: 'daytona', id: 's' }, memoryMiB: 1024 })).toThrow(
      SandboxCapabilityUnsupportedError,
    );
    expect(() => plan({ image: 'a', providerOptions: { daytona: { snapshot: 's' } } })).toThrow(SandboxInvalidArgumentError);
    expect(() => plan({ image: { base: 'a', commands: ['  '] } })).toThrow(SandboxInvalidArgumentError);
    expect(() => plan({ image: { type: 'snapshot', provider: 'e2b', id: 's' } })).toThrow(SandboxInvalidArgumentError);
  });

  it('mounts volumes by name, read-write; a read-only mount fails closed naming volumes', () => {
    expect(plan({ volumes: { '/data': 'cache', '/a': { source: 'models', readOnly: false } } }).params.volumes).toEqual([
      { volumeId: 'models', mountPath: '/a' },
      { volumeId: 'cache', mountPath: '/data' },
    ]);
    expect(plan({}).params.volumes).toBeUndefined();
    const refused = (() => {
      try {
        plan({ volumes: { '/data': { source: 'cache', readOnly: true } } });
      } catch (error) {
        return error;
      }
    })();
    expect(SandboxInvalidArgumentError.isInstance(refused) && refused.argument).toBe('volumes');
    expect((refused as Error).message).toMatch(/read-write only \(\/data from "cache"\)/);
  });

  it("gpu: a type, a type and a count, or a count, as Daytona's resources; on the default image, never on a snapshot", () => {
    expect(plan({ gpu: 'h100' }).params.resources).toEqual({ gpu: 1, gpuType: 'H100' });
    expect(plan({ gpu: 'RTX-4090:2', cpu: 4 }).params.resources).toEqual({ cpu: 4, gpu: 2, gpuType: 'RTX-4090' });
    expect(plan({ gpu: '3' }).params.resources).toEqual({ gpu: 3 });
    expect(plan({ gpu: 'H100' }).source).toEqual({ kind: 'image', image: daytonaDefaultImage });
    // Daytona's own type names pass as they are (its API decides which exist).
    for (const type of Object.values(sdk.GpuType).filter((value) => /^[A-Z]/.test(value))) {
      expect(planDaytonaGpu(type)).toEqual({ gpu: 1, gpuType: type });
    }
    for (const bad of ['0', 'H100:0', 'H100:', ':2', 'H100:two', 'H100 x2', '-1']) {
      expect(() => planDaytonaGpu(bad), bad).toThrow(/is not a Daytona GPU request: give a type \('H100'\)/);
    }
    expect(() => plan({ gpu: 'H100', image: { type: 'snapshot', provider: 'daytona', id: 's' } })).toThrow(/cpu, memory, disk and gpu/);
    expect(daytonaCapabilities.gpu).toBe(true);
  });

  it('refuses what Daytona cannot do here: pids, unknown provider options', () => {
    expect(() => plan({ pidsLimit: 100 })).toThrow(SandboxCapabilityUnsupportedError);
    expect(() => plan({ providerOptions: { daytona: { nope: 1 } } })).toThrow(SandboxInvalidArgumentError);
  });

  it('name, env, secrets (as env, with a warning), user, public, language, auto-archive', () => {
    const created = plan({
      name: 'my-box',
      env: { A: '1' },
      secrets: { TOKEN: 's3cret' },
      providerOptions: { daytona: { user: 'root', public: true, language: 'typescript', autoArchiveMinutes: 60 } },
    });
    expect(created.params).toMatchObject({
      name: 'my-box',
      envVars: { A: '1', TOKEN: 's3cret' },
      user: 'root',
      public: true,
      language: 'typescript',
      autoArchiveInterval: 60,
    });
    expect(created.warnings).toEqual([expect.objectContaining({ setting: 'secrets' })]);
  });

  it('the entrypoint (a string runs through sh -c), workdir and ports; an unencrypted port ask is a warning', () => {
    const created = plan({ command: 'python -m http.server', workdir: '/work', ports: [8080, { port: 9000, encrypted: false }] });
    expect(created.entrypoint).toEqual(['/bin/sh', '-c', 'python -m http.server']);
    expect(created.workdir).toBe('/work');
    expect(created.ports).toEqual([8080, 9000]);
    expect(created.warnings).toEqual([expect.objectContaining({ setting: 'ports.encrypted' })]);
    expect(plan({ command: ['node', 'server.js'] }).entrypoint).toEqual(['node', 'server.js']);
  });
});

describe('labels and tags', () => {
  it('tags verbatim under the managed marker; extra labels under the tags', () => {
    expect(planDaytonaLabels({ team: 'a' }, { team: 'x', cost: 'c' })).toEqual({ team: 'a', cost: 'c', [daytonaLabelKeys.managed]: '1' });
  });
  it('refuses keys under sandport.', () => {
    expect(() => planDaytonaLabels({ 'sandport.x': '1' })).toThrow(SandboxInvalidArgumentError);
    expect(() => planDaytonaLabels({}, { 'sandport.x': '1' })).toThrow(SandboxInvalidArgumentError);
  });
  it("reads tags back without the adapter's labels and the SDK's language label", () => {
    expect(tagsFromDaytonaLabels({ team: 'a', [daytonaLabelKeys.managed]: '1', [daytonaLanguageLabel]: 'python' })).toEqual({ team: 'a' });
    expect(tagsFromDaytonaLabels(undefined)).toEqual({});
  });
  it('setTags replaces the tags but keeps the marker and the language label', () => {
    expect(planDaytonaSetLabels({ b: '2' }, { a: '1', [daytonaLanguageLabel]: 'typescript', [daytonaLabelKeys.managed]: '1' })).toEqual({
      b: '2',
      [daytonaLabelKeys.managed]: '1',
      [daytonaLanguageLabel]: 'typescript',
    });
  });

  it("keeps a paused sandbox's held lifetime through a change of tags", () => {
    expect(planDaytonaSetLabels({ b: '2' }, { a: '1', [daytonaLabelKeys.heldLifetime]: '4000' })).toEqual({
      b: '2',
      [daytonaLabelKeys.managed]: '1',
      [daytonaLabelKeys.heldLifetime]: '4000',
    });
  });
});

describe('pause and resume labels', () => {
  const current = { job: 'x', [daytonaLabelKeys.managed]: '1', [daytonaLanguageLabel]: 'python' };

  it('a pause adds the lifetime left (whole ms, rounded up) to the labels; without a lifetime it adds nothing', () => {
    expect(planDaytonaPauseLabels(current, 4_000.2)).toEqual({ ...current, [daytonaLabelKeys.heldLifetime]: '4001' });
    expect(planDaytonaPauseLabels(current, undefined)).toEqual(current);
    // A stale held lifetime from an earlier pause is never carried over.
    expect(planDaytonaPauseLabels({ ...current, [daytonaLabelKeys.heldLifetime]: '9' }, undefined)).toEqual(current);
  });

  it('a resume drops the held lifetime and keeps the rest', () => {
    expect(planDaytonaResumeLabels({ ...current, [daytonaLabelKeys.heldLifetime]: '4001' })).toEqual(current);
    expect(planDaytonaResumeLabels(undefined)).toEqual({});
  });

  it('reads the held lifetime back, refusing what is not a positive integer', () => {
    expect(heldLifetimeFromDaytonaLabels({ [daytonaLabelKeys.heldLifetime]: '4001' })).toBe(4001);
    expect(heldLifetimeFromDaytonaLabels(current)).toBeUndefined();
    expect(heldLifetimeFromDaytonaLabels(undefined)).toBeUndefined();
    for (const bad of ['0', '-5', '1.5', 'abc', '', '99999999999999999999'])
      expect(heldLifetimeFromDaytonaLabels({ [daytonaLabelKeys.heldLifetime]: bad }), bad).toBeUndefined();
  });

  it('the TTL at a resume is the held lifetime in whole minutes, rounded up, at least one', () => {
    expect(daytonaResumeTtlMinutes(1)).toBe(1);
    expect(daytonaResumeTtlMinutes(60_000)).toBe(1);
    expect(daytonaResumeTtlMinutes(60_001)).toBe(2);
  });
});

describe('planDaytonaNetwork', () => {
  it('block, allow, and allowlists as comma strings (a bare address is its /32)', () => {
    expect(planDaytonaNetwork('block')).toEqual({ networkBlockAll: true, networkAllowList: '', domainAllowList: '' });
    expect(planDaytonaNetwork('allow')).toEqual({ networkBlockAll: false, networkAllowList: '', domainAllowList: '' });
    expect(planDaytonaNetwork({ allowCidrs: ['10.0.0.0/8', '192.0.2.1'], allowDomains: ['example.com', '*.npmjs.org'] })).toEqual({
      networkBlockAll: false,
      networkAllowList: '10.0.0.0/8,192.0.2.1/32',
      domainAllowList: 'example.com,*.npmjs.org',
    });
    expect(planDaytonaNetwork({ allowCidrs: [], allowDomains: [] })).toEqual({ networkBlockAll: true });
  });
  it('create takes the same settings', () => {
    expect(plan({ network: 'block' }).params.networkBlockAll).toBe(true);
    expect(plan({ network: { allowDomains: ['example.com'] } }).params).toMatchObject({
      networkBlockAll: false,
      domainAllowList: 'example.com',
    });
  });
});

/** Runs a Daytona command string the way Daytona does (a shell parses it) and returns what it printed. */
function shell(line: string, input?: string): { stdout: string; status: number | null } {
  const result = spawnSync('/bin/sh', ['-c', line], { input, encoding: 'utf8' });
  return { stdout: result.stdout, status: result.status };
}

describe('commands', () => {
  const tricky = ['printf', '%s|', 'a b', "it's", 'line\nbreak', '$HOME', '`x`', '"q"', 'ünï', '\\'];

  it('an argv reaches the program byte for byte through the shell string', () => {
    expect(shell(daytonaCommandLine(tricky)).stdout).toBe(
      tricky
        .slice(2)
        .map((argument) => `${argument}|`)
        .join(''),
    );
  });

  it('refuses an empty argv and a NUL byte', () => {
    expect(() => daytonaCommandLine([])).toThrow(SandboxInvalidArgumentError);
    expect(() => daytonaCommandLine(['echo', 'a\0b'])).toThrow(SandboxInvalidArgumentError);
  });

  it('the session command exports the env before the command', () => {
    const line = planDaytonaSessionCommand(['/bin/sh', '-c', 'printf %s "$GREETING"'], {
      env: { GREETING: "hi 'there'" },
      stdinNull: true,
    });
    expect(shell(line).stdout).toBe("hi 'there'");
  });

  it('the stdin relay delivers base64 lines byte for byte and ends the input at the EOF line', () => {
    const line = planDaytonaSessionCommand(['/bin/sh', '-c', 'od -An -tx1 | tr -d " \\n"; echo; echo done'], { stdinNull: false });
    const bytes = new Uint8Array([0, 1, 2, 255, 10, 13, 0x27]);
    const input = daytonaStdinLine(bytes.subarray(0, 3)) + daytonaStdinLine(bytes.subarray(3)) + daytonaStdinEofLine;
    const result = shell(line, input);
    expect(result.stdout).toBe('000102ff0a0d27\ndone\n');
    expect(result.status).toBe(0);
  });

  it("the relay keeps the command's exit code and does not wait for input the command did not read", () => {
    // No EOF line is ever sent: the command exits on its own, and the relay with it.
    const result = spawnSync('/bin/sh', ['-c', planDaytonaSessionCommand(['/bin/sh', '-c', 'exit 7'], { stdinNull: false })], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 20_000,
    });
    expect(result.status).toBe(7);
  });

  it("runs the kit's wrapper inside the relay (report first, then the output)", () => {
    const line = planDaytonaSessionCommand(wrapArgv('exec-1', ['cat']), { stdinNull: false });
    const result = shell(line, daytonaStdinLine(new TextEncoder().encode('hello')) + daytonaStdinEofLine);
    expect(result.stdout).toBe('\0SPX:ok\nhello');
  });
});

describe('DaytonaLogDemux', () => {
  const bytes = (...values: number[]) => new Uint8Array(values);
  const text = (pieces: { stream: string; data: Uint8Array }[]) =>
    pieces.map((piece) => `${piece.stream}:${Buffer.from(piece.data).toString('latin1')}`);

  it('splits prefixed frames into stdout and stderr', () => {
    const demux = new DaytonaLogDemux();
    expect(text(demux.push(bytes(1, 1, 1, 0x61, 0x62, 2, 2, 2, 0x63, 1, 1, 1, 0x64)))).toEqual(['stdout:ab', 'stderr:c', 'stdout:d']);
  });

  it('holds a prefix cut between frames, and output before a prefix is stdout', () => {
    const demux = new DaytonaLogDemux();
    expect(text(demux.push(bytes(0x78, 2, 2)))).toEqual(['stdout:x']);
    expect(text(demux.push(bytes(2, 0x79)))).toEqual(['stderr:y']);
    expect(text(demux.push(bytes(0x7a, 1)))).toEqual(['stderr:z']);
    expect(text(demux.end())).toEqual(['stderr:\u0001']);
  });

  it('keeps bytes that are not UTF-8 and lone 0x01/0x02 bytes as data', () => {
    const demux = new DaytonaLogDemux();
    expect(demux.push(bytes(1, 1, 1, 0xff, 0xfe, 1, 0x41, 2, 1, 0x00))).toEqual([
      { stream: 'stdout', data: bytes(0xff, 0xfe, 1, 0x41, 2, 1, 0x00) },
    ]);
  });

  it("the followed-logs URL is the SDK's", () => {
    expect(daytonaLogsUrl('http://127.0.0.1:1/toolbox/sb1', 's 1', 'c1')).toBe(
      'ws://127.0.0.1:1/toolbox/sb1/process/session/s%201/command/c1/logs?follow=true',
    );
    expect(daytonaLogsUrl('https://proxy.example/sb1', 's', 'c')).toBe(
      'wss://proxy.example/sb1/process/session/s/command/c/logs?follow=true',
    );
  });
});

describe('tunnels and timeouts', () => {
  it('a signed preview URL is the tunnel as it is', () => {
    expect(planDaytonaTunnel(3000, 'https://3000-abc.proxy.daytona.works/')).toEqual({
      port: 3000,
      url: 'https://3000-abc.proxy.daytona.works',
      host: '3000-abc.proxy.daytona.works',
      hostPort: 443,
      encrypted: true,
    });
    expect(planDaytonaTunnel(8080, 'http://127.0.0.1:4567/preview/x')).toMatchObject({ hostPort: 4567, encrypted: false });
  });
  it('extendTimeout is whole TTL minutes, rounded up with a warning', () => {
    expect(planDaytonaTtl(120_000)).toEqual({ ttlMinutes: 2, warning: undefined });
    expect(planDaytonaTtl(61_000).ttlMinutes).toBe(2);
    expect(planDaytonaTtl(61_000).warning).toMatchObject({ setting: 'timeoutMs' });
  });
});

describe('planDaytonaConfig', () => {
  it('explicit options win; the process environment fills the rest; the public API last', () => {
    expect(
      planDaytonaConfig({ apiKey: 'k', apiUrl: 'http://x/api' }, { DAYTONA_API_KEY: 'env', DAYTONA_API_URL: 'http://env/api' }),
    ).toEqual({
      apiKey: 'k',
      apiUrl: 'http://x/api',
      otelEnabled: false,
    });
    expect(planDaytonaConfig({}, { DAYTONA_API_KEY: 'env', DAYTONA_SERVER_URL: 'http://old/api', DAYTONA_TARGET: 'eu' })).toEqual({
      apiKey: 'env',
      apiUrl: 'http://old/api',
      target: 'eu',
      otelEnabled: false,
    });
    expect(planDaytonaConfig({ apiKey: 'k' }, {}).apiUrl).toBe(daytonaDefaultApiUrl);
  });
  it('a JWT needs its organisation; no credentials at all is an error naming apiKey', () => {
    expect(planDaytonaConfig({ jwtToken: 'j', organizationId: 'o' }, {})).toMatchObject({ jwtToken: 'j', organizationId: 'o' });
    expect(() => planDaytonaConfig({}, {})).toThrow(SandboxInvalidArgumentError);
    expect(() => planDaytonaConfig({ jwtToken: 'j' }, {})).toThrow(/apiKey/);
  });

  it('with the endpoint passed explicitly, a .env defining it does not make the SDK throw', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandport-daytona-env-'));
    const cwd = process.cwd();
    const saved = process.env.DAYTONA_API_URL;
    try {
      writeFileSync(join(dir, '.env'), 'DAYTONA_API_URL=http://from-dotenv/api\n');
      process.chdir(dir);
      process.env.DAYTONA_API_URL = 'http://from-env/api';
      // The SDK on its own: ambiguous, it throws.
      expect(() => new sdk.Daytona({ apiKey: 'k', otelEnabled: false })).toThrow(/ambiguous/);
      // The adapter's config names the endpoint, so the SDK takes it.
      expect(() => constructDaytona(sdk, planDaytonaConfig({ apiKey: 'k' }))).not.toThrow();
      expect(readFileSync(join(dir, '.env'), 'utf8')).toContain('from-dotenv');
    } finally {
      process.chdir(cwd);
      if (saved === undefined) delete process.env.DAYTONA_API_URL;
      else process.env.DAYTONA_API_URL = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the SDK constructor's own refusals become a clear SandboxInvalidArgumentError with the cause kept", () => {
    const refusing = {
      Daytona: class {
        constructor() {
          throw new sdk.DaytonaInvalidArgumentError('ambiguous endpoint');
        }
      },
    } as unknown as typeof sdk;
    const error = (() => {
      try {
        constructDaytona(refusing, planDaytonaConfig({ apiKey: 'k' }, {}));
      } catch (caught) {
        return caught;
      }
    })();
    expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(/pass apiKey and apiUrl/);
    expect((error as { cause?: unknown }).cause).toBeInstanceOf(sdk.DaytonaInvalidArgumentError);
  });

  it("the provider's factory does no I/O and needs no credentials until used", async () => {
    const provider = createDaytonaSandboxProvider({ apiUrl: 'http://127.0.0.1:9/api' });
    expect(provider.capabilities).toBe(daytonaCapabilities);
    const saved = process.env.DAYTONA_API_KEY;
    delete process.env.DAYTONA_API_KEY;
    try {
      await expect(provider.list()).rejects.toSatisfy((error) => SandboxInvalidArgumentError.isInstance(error));
    } finally {
      if (saved !== undefined) process.env.DAYTONA_API_KEY = saved;
    }
  });
});

describe('mapDaytonaError', () => {
  const context = { operation: 'op', sandboxId: 'sb1' };
  it("maps the SDK's classes, keeping the cause", () => {
    const notFound = new DaytonaNotFoundError('gone', 404);
    const mapped = mapDaytonaError(notFound, context);
    expect(SandboxNotFoundError.isInstance(mapped)).toBe(true);
    expect(mapped.cause).toBe(notFound);
    expect(SandboxAuthenticationError.isInstance(mapDaytonaError(new DaytonaAuthenticationError('no', 401), context))).toBe(true);
    expect(SandboxTimeoutError.isInstance(mapDaytonaError(new DaytonaTimeoutError('slow'), context))).toBe(true);
    expect(
      SandboxAlreadyExistsError.isInstance(mapDaytonaError(new DaytonaConflictError('name taken', 409), { operation: 'create' })),
    ).toBe(true);
  });
  it("a file call's not-found is the file", () => {
    const mapped = mapDaytonaError(new DaytonaFileNotFoundError('no file', 404), { operation: 'files.read', path: '/x' });
    expect(SandboxFileNotFoundError.isInstance(mapped)).toBe(true);
    expect(
      SandboxFileNotFoundError.isInstance(
        mapDaytonaError(new DaytonaNotFoundError('no file', 404), { operation: 'files.read', path: '/x' }),
      ),
    ).toBe(true);
  });
  it('429 and 5xx are retryable provider errors; other failures are provider errors', () => {
    const limited = mapDaytonaError(new DaytonaRateLimitError('slow down', 429), context);
    expect(SandboxProviderError.isInstance(limited) && limited.retryable).toBe(true);
    expect(mapDaytonaError(new DaytonaError('boom', 503), context).retryable).toBe(true);
    expect(SandboxProviderError.isInstance(mapDaytonaError(new Error('odd'), context))).toBe(true);
    expect(mapDaytonaError(new Error('odd'), context).retryable).toBe(false);
  });
  it('a connection reset is retryable', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(mapDaytonaError(reset, context).retryable).toBe(true);
  });
});

describe('capabilities', () => {
  it('are frozen and say what the adapter does', () => {
    expect(Object.isFrozen(daytonaCapabilities)).toBe(true);
    expect(daytonaCapabilities.exec).toMatchObject({ stdin: true, stdinEof: true, separateStderr: true, streaming: true });
    // Daytona's pause keeps processes and memory (its stop does not); watch is the kit's inotifywait.
    expect(daytonaCapabilities.pause).toBe(true);
    expect(daytonaCapabilities.files.watch).toBe(true);
  });
});
