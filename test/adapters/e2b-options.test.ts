/** Option mapping of the E2B adapter: units, defaults, refusals, commands, events and errors. No I/O. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  CommandExitError,
  FileNotFoundError,
  InvalidArgumentError,
  NotFoundError,
  RateLimitError,
  SandboxError as E2bSdkError,
  SandboxNotFoundError as E2bSandboxNotFoundError,
  ServiceBusyError,
  TimeoutError,
} from 'e2b';
import {
  createE2bSandboxProvider,
  e2bCapabilities,
  mapE2bError,
  mapE2bNetworkUpdateError,
  planE2bCreate,
  planE2bNetworkUpdate,
} from '../../adapters/e2b/index.js';
import {
  e2bCommandLine,
  e2bPtyLine,
  e2bPtyVariable,
  planE2bExec,
  planE2bExitCode,
  planE2bMetadata,
  planE2bNetwork,
  planE2bTimeout,
  planE2bTunnel,
  planE2bWatchEvent,
  pairE2bRename,
  tagsFromE2bMetadata,
} from '../../adapters/e2b/e2b-options.js';
import { toFileInfo } from '../../adapters/e2b/e2b-files.js';
import { detachPayloads } from '../../adapters/e2b/e2b-transport.js';
import {
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  SandboxTimeoutError,
  createSandboxOptionsSchema,
  type CreateSandboxOptions,
  type SandboxWarning,
} from '../../src/kit/index.js';

const settingOf = (warning: SandboxWarning) => (warning.type === 'unsupported-setting' ? warning.setting : undefined);
const plan = (options: CreateSandboxOptions, defaults = {}) => planE2bCreate(createSandboxOptionsSchema.parse(options), defaults);

describe('e2b create options', () => {
  it('defaults: the base template, E2B’s 5 minute lifetime in whole seconds, the managed marker, no network rules', () => {
    const result = plan({});
    expect(result.template).toEqual({ kind: 'name', template: 'base' });
    expect(result.opts.timeoutMs).toBe(300_000);
    expect(result.opts.metadata).toEqual({ 'sandport.managed': '1' });
    expect(result.opts.network).toBeUndefined();
    expect(result.opts.envs).toBeUndefined();
    expect(result.entrypoint).toBeUndefined();
    expect(result.warnings).toEqual([]);
  });

  it('rounds a lifetime up to whole seconds, with a warning', () => {
    const result = plan({ timeoutMs: 1500 });
    expect(result.opts.timeoutMs).toBe(2000);
    expect(result.warnings).toEqual([expect.objectContaining({ type: 'unsupported-setting', setting: 'timeoutMs' })]);
  });

  it('refuses a lifetime beyond 24 hours, an idle timeout, volumes, gpu and a pids limit', () => {
    expect(() => plan({ timeoutMs: 24 * 3600 * 1000 + 1 })).toThrow(SandboxInvalidArgumentError);
    expect(() => plan({ idleTimeoutMs: 1000 })).toThrow(SandboxCapabilityUnsupportedError);
    expect(() => plan({ gpu: 'A100' })).toThrow(SandboxCapabilityUnsupportedError);
    expect(() => plan({ pidsLimit: 10 })).toThrow(SandboxCapabilityUnsupportedError);
    expect(() => plan({ volumes: { '/data': 'vol' } })).toThrow(SandboxCapabilityUnsupportedError);
  });

  it('tags and the name go into metadata; tag keys under sandport. are refused', () => {
    const result = plan({ tags: { team: 'a', step: '1' }, name: 'worker-1' });
    expect(result.opts.metadata).toEqual({ team: 'a', step: '1', 'sandport.managed': '1', 'sandport.name': 'worker-1' });
    expect(() => plan({ tags: { 'sandport.name': 'x' } })).toThrow(SandboxInvalidArgumentError);
    expect(tagsFromE2bMetadata({ team: 'a', 'sandport.name': 'w', 'sandport.managed': '1' })).toEqual({ team: 'a' });
    expect(planE2bMetadata(undefined, undefined, { owner: 'me' })).toEqual({ owner: 'me', 'sandport.managed': '1' });
  });

  it('env and secrets are E2B envs (secrets with a warning: E2B has no secret env), env wins', () => {
    const result = plan({ env: { A: '1', S: 'env' }, secrets: { S: 'secret', T: 't' } });
    expect(result.opts.envs).toEqual({ A: '1', S: 'env', T: 't' });
    expect(result.warnings.map(settingOf)).toEqual(['secrets']);
  });

  it('network: block denies all traffic; an allowlist denies all but its CIDRs and domains', () => {
    expect(plan({ network: 'block' }).opts.network).toEqual({ denyOut: ['0.0.0.0/0'] });
    expect(plan({ network: { allowCidrs: ['10.0.0.0/8'], allowDomains: ['example.com'] } }).opts.network).toEqual({
      denyOut: ['0.0.0.0/0'],
      allowOut: ['10.0.0.0/8', 'example.com'],
    });
    expect(planE2bNetwork({ allowCidrs: [], allowDomains: [] })).toEqual({ denyOut: ['0.0.0.0/0'] });
    expect(planE2bNetwork('allow')).toBeUndefined();
    expect(planE2bNetwork('allow', false)).toEqual({ allowPublicTraffic: false });
  });

  it('updateNetwork: every policy spelt out whole (E2B replaces every rule), allow as internet access with no rules', () => {
    expect(planE2bNetworkUpdate('allow')).toEqual({ allowInternetAccess: true });
    expect(planE2bNetworkUpdate('block')).toEqual({ denyOut: ['0.0.0.0/0'] });
    expect(planE2bNetworkUpdate({ allowCidrs: [], allowDomains: [] })).toEqual({ denyOut: ['0.0.0.0/0'] });
    expect(planE2bNetworkUpdate({ allowCidrs: ['198.51.100.10/32'], allowDomains: ['allowed.test'] })).toEqual({
      denyOut: ['0.0.0.0/0'],
      allowOut: ['198.51.100.10/32', 'allowed.test'],
    });
  });

  it('updateNetwork: a 501 (a change the service does not make) is capability network.update; other errors stay as mapped', () => {
    // What the SDK's handleApiError throws for an answer without a class of its own.
    const statusError = (status: number, message: string) =>
      Object.assign(new E2bSdkError(`${status}: ${message}`), { statusCode: status });
    const notMade = mapE2bError(statusError(501, 'not emulated'), { operation: 'updateNetwork', sandboxId: 'sbx' });
    const refusal = mapE2bNetworkUpdateError(notMade);
    expect(refusal).toBeInstanceOf(SandboxCapabilityUnsupportedError);
    expect((refusal as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
    expect(refusal.message).toContain('not emulated');
    expect(refusal.cause).toBe(notMade.cause);
    const invalid = mapE2bError(statusError(400, 'denyOut: bad'), { operation: 'updateNetwork' });
    expect(mapE2bNetworkUpdateError(invalid)).toBe(invalid);
    const failed = mapE2bError(statusError(500, 'boom'), { operation: 'updateNetwork' });
    expect(mapE2bNetworkUpdateError(failed)).toBe(failed);
  });

  it('images: a reference is a template, a snapshot its template, { base, commands } a build', () => {
    expect(plan({ image: 'my-template' }).template).toEqual({ kind: 'name', template: 'my-template' });
    expect(plan({ image: { type: 'snapshot', provider: 'e2b', id: 'snap:latest' } }).template).toEqual({
      kind: 'name',
      template: 'snap:latest',
    });
    const built = plan({ image: { base: 'debian:bookworm', commands: ['apt-get update'] } }).template;
    expect(built).toMatchObject({ kind: 'build', from: { image: 'debian:bookworm' }, commands: ['apt-get update'] });
    expect(built.kind === 'build' && /^sandport-[0-9a-f]{16}$/.test(built.name)).toBe(true);
    // The same build has the same name (reused); another build another.
    expect(plan({ image: { base: 'debian:bookworm', commands: ['apt-get update'] } }).template).toEqual(built);
    expect(plan({ image: { base: 'debian:bookworm', commands: ['true'] } }).template).not.toEqual(built);
    expect(() => plan({ image: { type: 'snapshot', provider: 'modal', id: 'im-1' } })).toThrow(SandboxInvalidArgumentError);
  });

  it('cpu/memory: a known template with them, else a build from the template with them; cpu rounds up', () => {
    const templates = [{ template: 'base-2x1g', cpu: 2, memoryMiB: 1024 }];
    expect(plan({ cpu: 2, memoryMiB: 1024 }, { templates }).template).toEqual({ kind: 'name', template: 'base-2x1g' });
    const built = plan({ cpu: 1.5, memoryMiB: 512 }, { templates });
    expect(built.template).toMatchObject({ kind: 'build', from: { template: 'base' }, cpuCount: 2, memoryMB: 512, commands: [] });
    expect(built.warnings.map(settingOf)).toEqual(['cpu']);
    expect(plan({ image: { base: 'python:3', commands: [] }, memoryMiB: 2048 }).template).toMatchObject({
      from: { image: 'python:3' },
      memoryMB: 2048,
    });
    expect(() => plan({ image: { type: 'snapshot', provider: 'e2b', id: 's' }, cpu: 2 })).toThrow(SandboxCapabilityUnsupportedError);
  });

  it('command becomes the entrypoint argv; workdir and ports are kept for the sandbox', () => {
    const result = plan({ command: 'sleep infinity', workdir: '/work', ports: [8080, { port: 3000, encrypted: false }] });
    expect(result.entrypoint).toEqual(['/bin/sh', '-c', 'sleep infinity']);
    expect(result.workdir).toBe('/work');
    expect(result.ports).toEqual([8080, 3000]);
    expect(result.warnings.map(settingOf)).toEqual(['ports.encrypted']);
  });

  it('providerOptions.e2b: template, metadata, allowPublicTraffic, secure, autoPause; unknown keys refused', () => {
    const result = plan({
      providerOptions: { e2b: { template: 'code', metadata: { owner: 'x' }, allowPublicTraffic: false, secure: true, autoPause: true } },
    });
    expect(result.template).toEqual({ kind: 'name', template: 'code' });
    expect(result.opts.metadata).toMatchObject({ owner: 'x' });
    expect(result.opts.network).toEqual({ allowPublicTraffic: false });
    expect(result.opts.secure).toBe(true);
    expect(result.opts.lifecycle).toEqual({ onTimeout: 'pause' });
    expect(() => plan({ providerOptions: { e2b: { nope: 1 } } })).toThrow(SandboxInvalidArgumentError);
  });

  it('capabilities: honest about what E2B lacks', () => {
    expect(e2bCapabilities.timeouts.idle).toBe(false);
    expect(e2bCapabilities.volumes).toBe(false);
    expect(e2bCapabilities.limits.pids).toBe(false);
    expect(e2bCapabilities.gpu).toBe(false);
    expect(createE2bSandboxProvider().capabilities).toBe(e2bCapabilities);
  });
});

describe('e2b exec plan', () => {
  const hostile = ['printf', '%s|', "it's", 'a "b"', '$HOME', '`id`', 'new\nline', 'üñí €', '', '\\', '!x', '*', '-n'];

  it('an argv survives /bin/bash -l -c byte for byte', () => {
    const line = e2bCommandLine(hostile);
    const result = spawnSync('/bin/bash', ['-c', line], { encoding: 'utf8' });
    expect(result.stdout).toBe(`${hostile.slice(2).join('|')}|`);
  });

  it('bash stays the parent: a death by signal n is the exit code 128 + n', () => {
    const result = spawnSync('/bin/bash', ['-c', e2bCommandLine(['/bin/sh', '-c', 'kill -TERM $$'])]);
    expect(result.status).toBe(143);
    expect(spawnSync('/bin/bash', ['-c', e2bCommandLine(['sh', '-c', 'exit 7'])]).status).toBe(7);
  });

  it('no 60 s default: timeoutMs 0; stdin requested at start unless the command gets none', () => {
    expect(planE2bExec(['cat'], {}).opts).toEqual({ background: true, stdin: true, timeoutMs: 0 });
    expect(planE2bExec(['cat'], { stdinNull: true, env: { A: '1' } }).opts).toMatchObject({
      background: true,
      stdin: false,
      timeoutMs: 0,
      envs: { A: '1' },
    });
    expect(() => e2bCommandLine([])).toThrow(SandboxInvalidArgumentError);
  });

  it("an exec's env is set again after the login profile, from a variable, never on the command line", () => {
    const env = { PATH: '/custom/bin:/usr/bin:/bin', ODD: "it's $HOME" };
    const plan = planE2bExec(['sh', '-c', 'printf "%s|%s" "$PATH" "$ODD"; printenv SANDPORT_EXEC_ENV || true'], { env });
    expect(plan.cmd).not.toContain('/custom/bin');
    // What E2B runs: `bash -l -c <cmd>` with `envs`, after a profile that resets PATH.
    const result = spawnSync('/bin/bash', ['-c', `PATH=/usr/bin:/bin; ${plan.cmd}`], { env: { ...plan.opts.envs }, encoding: 'utf8' });
    expect(result.stdout).toBe("/custom/bin:/usr/bin:/bin|it's $HOME");
  });

  it('the PTY line hands the command over in a self-unsetting variable and types one short line', () => {
    const { envs, input } = e2bPtyLine(hostile);
    expect(input).toBe(` eval "$${e2bPtyVariable}"\n`);
    const result = spawnSync('/bin/bash', ['-c', 'eval "$SANDPORT_PTY_LINE"'], { encoding: 'utf8', env: { ...process.env, ...envs } });
    expect(result.stdout).toBe(`${hostile.slice(2).join('|')}|`);
    const leaked = spawnSync('/bin/bash', ['-c', 'eval "$SANDPORT_PTY_LINE"'], {
      encoding: 'utf8',
      env: { ...process.env, ...e2bPtyLine(['sh', '-c', 'echo "${SANDPORT_PTY_LINE-unset}"']).envs },
    });
    expect(leaked.stdout).toBe('unset\n');
    // The exec's env is exported again after the login shell's profile ran.
    const again = e2bPtyLine(['sh', '-c', 'echo "$PS1"'], { PS1: "it's> " });
    const reset = spawnSync('/bin/bash', ['-c', 'PS1=profile; eval "$SANDPORT_PTY_LINE"'], {
      encoding: 'utf8',
      env: { ...process.env, ...again.envs },
    });
    expect(reset.stdout).toBe("it's> \n");
  });

  it('exit codes: a code is a code; envd’s -1 with a signal status is 128 + n', () => {
    expect(planE2bExitCode(0, undefined)).toBe(0);
    expect(planE2bExitCode(3, 'exit status 3')).toBe(3);
    expect(planE2bExitCode(-1, 'signal: killed')).toBe(137);
    expect(planE2bExitCode(-1, 'signal: terminated')).toBe(143);
    expect(planE2bExitCode(-1, 'signal: interrupt')).toBe(130);
    expect(planE2bExitCode(-1, undefined)).toBe(137);
  });

  it('extendTimeout rounds to whole seconds with a warning', () => {
    expect(planE2bTimeout(60_000)).toEqual({ timeoutMs: 60_000, warning: undefined });
    expect(planE2bTimeout(60_001).timeoutMs).toBe(61_000);
    expect(settingOf(planE2bTimeout(60_001).warning!)).toBe('timeoutMs');
  });
});

describe('e2b tunnels, watch events and file info', () => {
  it('tunnels: https on the host getHost gives; http where there is no TLS (the emulator)', () => {
    expect(planE2bTunnel(8080, '8080-abc.e2b.app')).toEqual({
      port: 8080,
      url: 'https://8080-abc.e2b.app',
      host: '8080-abc.e2b.app',
      hostPort: 443,
      encrypted: true,
    });
    expect(planE2bTunnel(8080, '8080-abc.e2b.localhost:4100', 'http')).toEqual({
      port: 8080,
      url: 'http://8080-abc.e2b.localhost:4100',
      host: '8080-abc.e2b.localhost',
      hostPort: 4100,
      encrypted: false,
    });
  });

  it('watch events: paths relative to the watched directory, kinds mapped, a rename away is a remove', () => {
    expect(planE2bWatchEvent('/w', { type: 'create', name: 'a.txt' })).toEqual({ type: 'create', path: '/w/a.txt' });
    expect(planE2bWatchEvent('/w/', { type: 'write', name: 'd/b' })).toEqual({ type: 'modify', path: '/w/d/b' });
    expect(planE2bWatchEvent('/w', { type: 'chmod', name: 'a' })).toEqual({ type: 'modify', path: '/w/a' });
    expect(planE2bWatchEvent('/w', { type: 'remove', name: 'a' })).toEqual({ type: 'remove', path: '/w/a' });
    expect(planE2bWatchEvent('/w', { type: 'rename', name: 'a' })).toEqual({ type: 'remove', path: '/w/a' });
    expect(planE2bWatchEvent('/w', { type: 'other', name: 'a' })).toBeUndefined();
  });

  it('file info: envd’s types, permission bits only, the modification time in ms; a link is told by its mode string', () => {
    const modifiedTime = new Date(1_700_000_000_123);
    const base = { name: 'x', path: '/x', size: 3, permissions: '-rw-r--r--', owner: 'user', group: 'user', modifiedTime };
    expect(toFileInfo({ ...base, type: 'file' as never, mode: 0o100644 })).toEqual({
      name: 'x',
      path: '/x',
      type: 'file',
      size: 3,
      mode: 0o644,
      modifiedAt: 1_700_000_000_123,
    });
    expect(toFileInfo({ ...base, type: 'dir' as never, mode: 0o40755 }).type).toBe('directory');
    // envd describes a link by its target (type, bits, resolved path); `Lrwxrwxrwx` says it is one.
    const link = { ...base, permissions: 'Lrwxrwxrwx', type: 'file' as never, mode: 0o644, symlinkTarget: '/resolved/t' };
    expect(toFileInfo(link)).toMatchObject({ type: 'symlink', mode: 0o777, linkTarget: '/resolved/t' });
    expect(toFileInfo(link, '../t')).toMatchObject({ type: 'symlink', linkTarget: '../t' });
    expect(toFileInfo({ ...base, type: undefined, mode: 0o644 }).type).toBe('other');
  });

  it('a move is rename + create on envd: paired into one rename; anything else stays apart', () => {
    const moved = { type: 'remove' as const, path: '/w/a' };
    expect(pairE2bRename(moved, { type: 'create', path: '/w/b' })).toEqual([{ type: 'rename', path: '/w/b', oldPath: '/w/a' }]);
    expect(pairE2bRename(moved, { type: 'modify', path: '/w/c' })).toEqual([moved, { type: 'modify', path: '/w/c' }]);
    expect(planE2bWatchEvent('/w', { type: 'remove', name: '.' })).toEqual({ type: 'remove', path: '/w' });
  });

  it('process events are handed on detached: the transport’s copy keeps no bytes', async () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const original = { event: { event: { case: 'data', value: { output: { case: 'stdout', value: bytes } } } } };
    const start = { event: { event: { case: 'start', value: { pid: 7 } } } };
    async function* source() {
      yield start;
      yield original;
    }
    const events = detachPayloads(source());
    // The SDK reads the start event with one iterator and the rest with another: one stream.
    expect((await events[Symbol.asyncIterator]().next()).value).toBe(start);
    const next = await events[Symbol.asyncIterator]().next();
    expect(next.value).toEqual({ event: { event: { case: 'data', value: { output: { case: 'stdout', value: bytes } } } } });
    expect(original.event.event.value.output.value).toHaveLength(0);
  });
});

describe('e2b errors', () => {
  const context = { operation: 'files.read', sandboxId: 'sbx', path: '/missing' };
  const statusError = (status: number, message: string) => Object.assign(new E2bSdkError(message), { statusCode: status });

  it('keeps the SDK error as cause and maps each class', () => {
    const cases: Array<[unknown, { operation: string; sandboxId?: string; path?: string }, new (...args: never[]) => Error]> = [
      [new FileNotFoundError('nope'), context, SandboxFileNotFoundError],
      [new NotFoundError('path not found'), context, SandboxFileNotFoundError],
      [new NotFoundError('sandbox not found'), { operation: 'fromId', sandboxId: 'sbx' }, SandboxNotFoundError],
      [new E2bSandboxNotFoundError('Paused sandbox sbx not found'), { operation: 'resume' }, SandboxNotFoundError],
      [new InvalidArgumentError('path is a directory'), context, SandboxInvalidArgumentError],
      [new AuthenticationError('Unauthorized'), { operation: 'create' }, SandboxAuthenticationError],
      [new TimeoutError('deadline exceeded: timeoutMs'), { operation: 'exec' }, SandboxTimeoutError],
      [
        new TimeoutError('terminated: The sandbox was killed or reached its end of life while the request was in flight.'),
        { operation: 'exec' },
        SandboxNotFoundError,
      ],
      [new RateLimitError('slow down'), { operation: 'list' }, SandboxProviderError],
      [new ServiceBusyError('busy'), { operation: 'create' }, SandboxProviderError],
      [statusError(502, 'The sandbox was not found'), { operation: 'exec' }, SandboxNotFoundError],
      [new E2bSdkError('404: no such sandbox'), { operation: 'kill', sandboxId: 'sbx' }, SandboxNotFoundError],
      [new E2bSdkError('500: boom'), { operation: 'kill' }, SandboxProviderError],
      [new CommandExitError({ exitCode: 3, stdout: '', stderr: '', error: 'exit status 3' }), { operation: 'exec' }, SandboxProviderError],
    ];
    for (const [error, errorContext, expected] of cases) {
      const mapped = mapE2bError(error, errorContext);
      expect(mapped, `${(error as Error).name}: ${(error as Error).message}`).toBeInstanceOf(expected);
      expect(mapped.cause).toBe(error);
      expect(mapped.provider).toBe('e2b');
    }
  });

  it('marks rate limits and busy answers retryable, names the path of invalid file calls', () => {
    expect(mapE2bError(new RateLimitError('x'), { operation: 'list' }).retryable).toBe(true);
    expect(mapE2bError(new ServiceBusyError('x'), { operation: 'create' }).retryable).toBe(true);
    expect((mapE2bError(new InvalidArgumentError('is a dir'), context) as SandboxInvalidArgumentError).argument).toBe('path');
    expect((mapE2bError(new FileNotFoundError('x'), context) as SandboxFileNotFoundError).path).toBe('/missing');
  });

  it('maps connection failures to retryable provider errors', () => {
    const refused = Object.assign(new TypeError('fetch failed'), {
      cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    });
    const mapped = mapE2bError(refused, { operation: 'create' });
    expect(mapped).toBeInstanceOf(SandboxProviderError);
    expect(mapped.retryable).toBe(true);
  });
});
