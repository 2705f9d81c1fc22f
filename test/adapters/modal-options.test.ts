/** Option mapping of the Modal adapter: units, defaults, refusals, and the error mapping. No I/O. */
import { describe, expect, it } from 'vitest';
import { NotFoundError, SandboxFilesystemNotFoundError } from 'modal';
import {
  createModalSandboxProvider,
  mapModalError,
  mapModalNetworkUpdateError,
  modalCapabilities,
  planModalCreate,
  planModalNetworkUpdate,
} from '../../adapters/modal/index.js';
import { isModalWatchGap, modalTerminalScript, planModalExec, planModalWatchEvent } from '../../adapters/modal/modal-options.js';
import {
  SandboxAlreadyExistsError,
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  createSandboxOptionsSchema,
  wrapArgv,
  type CreateSandboxOptions,
} from '../../src/kit/index.js';

const defaults = { image: 'python:3.13-slim', encryptPorts: true };
const plan = (options: CreateSandboxOptions) => planModalCreate(createSandboxOptionsSchema.parse(options), defaults);

describe('modal create options', () => {
  it('defaults: the default image and Modal’s 5 minute lifetime, in milliseconds', () => {
    const { image, params, warnings } = plan({});
    expect(image).toEqual({ kind: 'registry', tag: 'python:3.13-slim' });
    expect(params.timeoutMs).toBe(300_000);
    expect(params.idleTimeoutMs).toBeUndefined();
    expect(params.blockNetwork).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('maps every neutral option to its SDK parameter', () => {
    const result = plan({
      image: { base: 'debian:bookworm-slim', commands: ['apt-get update'] },
      command: 'sleep infinity',
      env: { A: '1' },
      secrets: { TOKEN: 's3cret' },
      workdir: '/work',
      cpu: 1.5,
      memoryMiB: 2048,
      gpu: 'A10G:2',
      timeoutMs: 3_600_000,
      idleTimeoutMs: 60_000,
      ports: [8000, { port: 9000, encrypted: false }, { port: 9443, encrypted: true }],
      name: 'box',
      tags: { team: 'a' },
      volumes: { '/data': 'my-volume', '/ro': { source: 'shared', readOnly: true } },
      providerOptions: { modal: { regions: ['us-east'], secrets: ['named-secret'], runtime: 'gvisor' } },
    });
    expect(result.image).toEqual({ kind: 'build', base: 'debian:bookworm-slim', commands: ['apt-get update'] });
    expect(result.params).toMatchObject({
      command: ['/bin/sh', '-c', 'sleep infinity'],
      env: { A: '1' },
      workdir: '/work',
      cpu: 1.5,
      cpuLimit: 1.5,
      memoryMiB: 2048,
      memoryLimitMiB: 2048,
      gpu: 'A10G:2',
      timeoutMs: 3_600_000,
      idleTimeoutMs: 60_000,
      encryptedPorts: [8000, 9443],
      unencryptedPorts: [9000],
      name: 'box',
      tags: { team: 'a' },
      regions: ['us-east'],
      runtime: 'gvisor',
    });
    expect(result.secretValues).toEqual({ TOKEN: 's3cret' });
    expect(JSON.stringify(result.params)).not.toContain('s3cret');
    expect(result.secretNames).toEqual(['named-secret']);
    expect(result.volumes).toEqual([
      { mountPath: '/data', name: 'my-volume', readOnly: false },
      { mountPath: '/ro', name: 'shared', readOnly: true },
    ]);
  });

  it('argv entrypoints pass through unchanged; snapshots become image ids', () => {
    const result = plan({ command: ['python', '-c', 'print("a b")'], image: { type: 'snapshot', provider: 'modal', id: 'im-123' } });
    expect(result.params.command).toEqual(['python', '-c', 'print("a b")']);
    expect(result.image).toEqual({ kind: 'snapshot', imageId: 'im-123' });
  });

  it('network: block, and CIDR / domain allowlists', () => {
    expect(plan({ network: 'block' }).params.blockNetwork).toBe(true);
    const allow = plan({ network: { allowCidrs: ['10.0.0.0/8'], allowDomains: ['*.example.com'] } }).params;
    expect(allow.outboundCidrAllowlist).toEqual(['10.0.0.0/8']);
    expect(allow.outboundDomainAllowlist).toEqual(['*.example.com']);
    // An empty allowlist still blocks everything it does not list.
    expect(plan({ network: { allowCidrs: [], allowDomains: [] } }).params.outboundCidrAllowlist).toEqual([]);
  });

  it('updateNetwork: both lists always (the SDK refuses one alone), block as two empty ones, allow as the allow-all block', () => {
    expect(planModalNetworkUpdate({ allowCidrs: ['10.0.0.0/8'], allowDomains: ['*.example.com'] })).toEqual({
      outboundCidrAllowlist: ['10.0.0.0/8'],
      outboundDomainAllowlist: ['*.example.com'],
    });
    expect(planModalNetworkUpdate('block')).toEqual({ outboundCidrAllowlist: [], outboundDomainAllowlist: [] });
    expect(planModalNetworkUpdate('allow')).toEqual({ outboundCidrAllowlist: ['0.0.0.0/0'], outboundDomainAllowlist: [] });
  });

  it('updateNetwork: UNIMPLEMENTED (a change the service does not make) is capability network.update; other errors stay as mapped', () => {
    const grpcError = (code: number, details: string) => Object.assign(new Error(details), { name: 'ClientError', code, details });
    const notMade = mapModalError(grpcError(12, 'not emulated'), { operation: 'updateNetwork', sandboxId: 'sb-1' });
    const refusal = mapModalNetworkUpdateError(notMade);
    expect(refusal).toBeInstanceOf(SandboxCapabilityUnsupportedError);
    expect((refusal as SandboxCapabilityUnsupportedError).capability).toBe('network.update');
    expect(refusal.message).toContain('not emulated');
    const invalid = mapModalError(grpcError(3, 'bad cidr'), { operation: 'updateNetwork', sandboxId: 'sb-1' });
    expect(invalid).toBeInstanceOf(SandboxInvalidArgumentError);
    expect(mapModalNetworkUpdateError(invalid)).toBe(invalid);
    const failed = mapModalError(grpcError(9, 'precondition'), { operation: 'updateNetwork', sandboxId: 'sb-1' });
    expect(mapModalNetworkUpdateError(failed)).toBe(failed);
  });

  it('ports are encrypted by default, plain when the provider is told so', () => {
    expect(
      planModalCreate(createSandboxOptionsSchema.parse({ ports: [80] }), { ...defaults, encryptPorts: false }).params.unencryptedPorts,
    ).toEqual([80]);
    expect(plan({ ports: [80] }).params.encryptedPorts).toEqual([80]);
  });

  it('durations are whole seconds on Modal: rounded up, with a warning', () => {
    const result = plan({ timeoutMs: 1_500, idleTimeoutMs: 2_001 });
    expect(result.params.timeoutMs).toBe(2_000);
    expect(result.params.idleTimeoutMs).toBe(3_000);
    expect(result.warnings.map((warning) => warning.type === 'unsupported-setting' && warning.setting)).toEqual([
      'timeoutMs',
      'idleTimeoutMs',
    ]);
  });

  it('refuses what Modal cannot do, before any I/O', () => {
    expect(() => plan({ timeoutMs: 24 * 3_600_000 + 1 })).toThrow(/24 hours/);
    expect(SandboxInvalidArgumentError.isInstance(catchError(() => plan({ timeoutMs: 25 * 3_600_000 })))).toBe(true);
    expect(SandboxCapabilityUnsupportedError.isInstance(catchError(() => plan({ pidsLimit: 100 })))).toBe(true);
    const foreign = catchError(() => plan({ image: { type: 'snapshot', provider: 'local', id: 'snap-1' } }));
    expect(SandboxInvalidArgumentError.isInstance(foreign) && foreign.argument).toBe('image');
    const hostPath = catchError(() => plan({ volumes: { '/data': '/host/dir' } }));
    expect(SandboxInvalidArgumentError.isInstance(hostPath) && hostPath.argument).toBe('volumes./data');
    const unknown = catchError(() => plan({ providerOptions: { modal: { notAnOption: 1 } } }));
    expect(SandboxInvalidArgumentError.isInstance(unknown)).toBe(true);
  });

  it('the provider validates before it makes a client', async () => {
    const provider = createModalSandboxProvider({ tokenId: 'id', tokenSecret: 'secret' });
    await expect(provider.create({ memoryMiB: -1 })).rejects.toSatisfy((error: unknown) => SandboxInvalidArgumentError.isInstance(error));
    await expect(provider.create({ timeoutMs: 48 * 3_600_000 })).rejects.toSatisfy((error: unknown) =>
      SandboxInvalidArgumentError.isInstance(error),
    );
    expect(() => createModalSandboxProvider({ tokenId: 'only-id' })).toThrow(/both/);
  });

  it('capabilities: what Modal lacks is false', () => {
    expect(modalCapabilities.extendTimeout).toBe(false);
    expect(modalCapabilities.limits.pids).toBe(false);
    expect(modalCapabilities.timeouts.maxLifetimeMs).toBe(24 * 3_600_000);
    expect(typeof (createModalSandboxProvider() as { extendTimeout?: unknown }).extendTimeout).toBe('undefined');
  });
});

describe('modal error mapping', () => {
  it('keeps the SDK error as cause and maps by kind', () => {
    const missingFile = new SandboxFilesystemNotFoundError('No such file: /x');
    const mapped = mapModalError(missingFile, { operation: 'read', path: '/x' });
    expect(SandboxFileNotFoundError.isInstance(mapped) && mapped.path).toBe('/x');
    expect(mapped.cause).toBe(missingFile);
    expect(SandboxNotFoundError.isInstance(mapModalError(new NotFoundError('gone'), { operation: 'exec', sandboxId: 'sb-1' }))).toBe(true);
  });

  it('maps raw gRPC errors by status, marking transient ones retryable', () => {
    const grpc = (code: number) => Object.assign(new Error(`status ${code}`), { name: 'ClientError', code, details: `status ${code}` });
    expect(SandboxNotFoundError.isInstance(mapModalError(grpc(5), { operation: 'wait' }))).toBe(true);
    expect(SandboxAlreadyExistsError.isInstance(mapModalError(grpc(6), { operation: 'create' }))).toBe(true);
    expect(SandboxInvalidArgumentError.isInstance(mapModalError(grpc(3), { operation: 'create' }))).toBe(true);
    const unavailable = mapModalError(grpc(14), { operation: 'list' });
    expect(SandboxProviderError.isInstance(unavailable) && unavailable.retryable).toBe(true);
    const precondition = mapModalError(grpc(9), { operation: 'create' });
    expect(SandboxProviderError.isInstance(precondition) && precondition.retryable).toBe(false);
    expect(mapModalError(grpc(16), { operation: 'create' }).code).toBe('authentication');
  });
});

function catchError(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('modal exec plan', () => {
  it('pipes: the kit wrapper, binary mode, the env as given, no pty', () => {
    const result = planModalExec('x1', ['echo', 'a b'], { cwd: '/work', env: { A: '1' }, stdinNull: true });
    expect(result.params).toEqual({ mode: 'binary', env: { A: '1' } });
    expect(result.argv).toEqual(wrapArgv('x1', ['echo', 'a b'], { cwd: '/work', stdinNull: true }));
  });

  it('pty: the SDK’s pty: true, the size and TERM set on the terminal, then the wrapper in its terminal mode', () => {
    const result = planModalExec('x2', ['/bin/sh', '-i'], { pty: { cols: 101, rows: 37 } });
    expect(result.params).toEqual({ mode: 'binary', pty: true });
    expect(result.argv.slice(0, 7)).toEqual(['/bin/sh', '-c', modalTerminalScript, 'sandport-pty', '37', '101', 'xterm-256color']);
    expect(result.argv.slice(7)).toEqual(wrapArgv('x2', ['/bin/sh', '-i'], { pty: true }));
  });

  it('pty: env.TERM wins over the default and stays in the env; an empty stdin is never asked for', () => {
    const result = planModalExec('x3', ['top'], { env: { TERM: 'vt100' }, pty: { cols: 80, rows: 24 }, stdinNull: true });
    expect(result.params.env).toEqual({ TERM: 'vt100' });
    expect(result.argv[6]).toBe('vt100');
    expect(result.argv.slice(7)).toEqual(wrapArgv('x3', ['top'], { pty: true }));
  });
});

describe('modal watch events', () => {
  it('Create and Remove keep their path', () => {
    expect(planModalWatchEvent({ eventType: 'Create', paths: ['/w/a'] })).toEqual({ type: 'create', path: '/w/a' });
    expect(planModalWatchEvent({ eventType: 'Remove', paths: ['/w/a'] })).toEqual({ type: 'remove', path: '/w/a' });
  });

  it('Modify with one path is modify; with [from, to] it is a rename with oldPath', () => {
    expect(planModalWatchEvent({ eventType: 'Modify', paths: ['/w/a'] })).toEqual({ type: 'modify', path: '/w/a' });
    expect(planModalWatchEvent({ eventType: 'Modify', paths: ['/w/a', '/w/b'] })).toEqual({
      type: 'rename',
      path: '/w/b',
      oldPath: '/w/a',
    });
  });

  it('Unknown (the watcher’s queue overflowed) is a gap; the other kinds are not', () => {
    expect(isModalWatchGap({ eventType: 'Unknown', paths: ['/w'] })).toBe(true);
    for (const eventType of ['Access', 'Create', 'Modify', 'Remove']) expect(isModalWatchGap({ eventType, paths: ['/w/a'] })).toBe(false);
  });

  it('Access, Unknown, unknown kinds and events without a path are left out', () => {
    for (const eventType of ['Access', 'Unknown', 'Other']) expect(planModalWatchEvent({ eventType, paths: ['/w/a'] })).toBeUndefined();
    expect(planModalWatchEvent({ eventType: 'Create', paths: [] })).toBeUndefined();
  });
});
