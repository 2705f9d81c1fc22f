import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  SandboxInvalidArgumentError,
  checkWriteData,
  createSandboxOptionsSchema,
  execOptionsSchema,
  isSandboxSignal,
  listSandboxesOptionsSchema,
  maxMemoryMiB,
  maxPidsLimit,
  maxTimerMs,
  millisecondsSchema,
  parseOptions,
  removeOptionsSchema,
  runOptionsSchema,
  sandboxSignals,
  signalNameSchema,
  signalOptionsSchema,
  tagsSchema,
  writeFileOptionsSchema,
} from '../../src/kit/index.js';

function rejection(schema: Parameters<typeof parseOptions>[0], value: unknown): SandboxInvalidArgumentError {
  try {
    parseOptions(schema, value, { what: 'options' });
  } catch (error) {
    if (SandboxInvalidArgumentError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('option schemas', () => {
  it('accept a full, valid create bag', () => {
    const parsed = parseOptions(
      createSandboxOptionsSchema,
      {
        image: { base: 'debian', commands: ['apt-get update'] },
        command: ['sleep', '10'],
        env: { A: '1' },
        secrets: { TOKEN: 'x' },
        workdir: '/work',
        cpu: 0.5,
        memoryMiB: 256,
        pidsLimit: 64,
        timeoutMs: 60_000,
        idleTimeoutMs: 5_000,
        network: { allowDomains: ['example.org'] },
        ports: [8080, { port: 9000, encrypted: false }],
        name: 'my-box',
        tags: { team: 'a' },
        volumes: { '/data': { source: 'vol', readOnly: true }, '/cache': 'cache' },
        providerOptions: { local: { x: 1 } },
      },
      { what: 'create options' },
    );
    expect(parsed.network).toEqual({ allowCidrs: [], allowDomains: ['example.org'] });
    expect(parsed.volumes?.['/data']).toEqual({ source: 'vol', readOnly: true });
  });

  it.each([
    [{ memoryMiB: 0 }, 'memoryMiB'],
    [{ memoryMiB: 1.5 }, 'memoryMiB'],
    [{ cpu: -1 }, 'cpu'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ workdir: 'rel' }, 'workdir'],
    [{ workdir: '/a\0b' }, 'workdir'],
    [{ command: [] }, 'command'],
    [{ command: ['a\0'] }, 'command.0'],
    [{ env: { '1BAD': 'x' } }, 'env.1BAD'],
    [{ ports: [0] }, 'ports.0'],
    [{ name: '-leading-dash' }, 'name'],
    [{ volumes: { relative: 'x' } }, 'volumes.relative'],
    [{ network: 'sometimes' }, 'network'],
    [{ unknownField: 1 }, 'options'],
  ])('rejects %j naming %s', (value, field) => {
    const error = rejection(createSandboxOptionsSchema, value);
    expect(error.argument).toBe(field);
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toContain(field);
  });

  it('validates exec options', () => {
    expect(rejection(execOptionsSchema, { cwd: 'x' }).argument).toBe('cwd');
    expect(rejection(execOptionsSchema, { timeoutMs: 1.2 }).argument).toBe('timeoutMs');
    expect(parseOptions(execOptionsSchema, undefined, { what: 'exec options' })).toEqual({});
  });
});

const bigTags = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`k${index}`, 'v']));

describe('every object schema is strict', () => {
  it.each([
    [
      'a volume with "readonly" (lower-case o)',
      createSandboxOptionsSchema,
      { volumes: { '/data': { source: '/srv', readonly: true } } },
      'volumes./data',
    ],
    ['a port object with an unknown key', createSandboxOptionsSchema, { ports: [{ port: 80, tls: true }] }, 'ports.0'],
    ['a network allowlist with an unknown key', createSandboxOptionsSchema, { network: { allowDomains: [], block: true } }, 'network'],
    ['an image build with "command" for "commands"', createSandboxOptionsSchema, { image: { base: 'debian', command: ['true'] } }, 'image'],
    [
      'a snapshot ref with an extra key',
      createSandboxOptionsSchema,
      { image: { type: 'snapshot', provider: 'local', id: 's', extra: 1 } },
      'image',
    ],
    ['create options with a typo', createSandboxOptionsSchema, { timeoutMS: 1000 }, 'options'],
    ['exec options with a typo', execOptionsSchema, { timeout: 1000 }, 'options'],
    ['run options with a typo', runOptionsSchema, { maxOutput: 10 }, 'options'],
    ['list options with a typo', listSandboxesOptionsSchema, { tag: {} }, 'options'],
    ['signal options with an extra key', signalOptionsSchema, { timeoutMs: 5 }, 'options'],
    ['write options with a typo', writeFileOptionsSchema, { permissions: 0o644 }, 'options'],
    ['remove options with a typo', removeOptionsSchema, { recurse: true }, 'options'],
  ] as const)('rejects %s', (_, schema, value, field) => {
    const error = rejection(schema, value);
    expect(error.argument).toBe(field);
    expect(error.message).toMatch(/unknown option/);
  });

  it('a volume without readOnly mounts read-write, and readOnly: true is kept', () => {
    const volumes = { '/a': { source: 'x' }, '/b': { source: 'y', readOnly: true } };
    const parsed = parseOptions(createSandboxOptionsSchema, { volumes }, { what: 'options' });
    expect(parsed.volumes).toEqual({ '/a': { source: 'x', readOnly: false }, '/b': { source: 'y', readOnly: true } });
  });
});

describe('milliseconds', () => {
  const fields = [
    ['create', createSandboxOptionsSchema, 'timeoutMs'],
    ['create', createSandboxOptionsSchema, 'idleTimeoutMs'],
    ['exec', execOptionsSchema, 'timeoutMs'],
    ['run', runOptionsSchema, 'timeoutMs'],
  ] as const;

  it.each(fields)('%s %s above the largest Node timer is rejected with a message naming the maximum', (_, schema, field) => {
    const error = rejection(schema, { [field]: 2 ** 31 });
    expect(error.argument).toBe(field);
    expect(error.message).toContain(String(maxTimerMs));
  });

  it.each(fields)('%s %s accepts 1 and exactly maxTimerMs', (_, schema, field) => {
    expect(parseOptions(schema, { [field]: 1 }, { what: 'options' })).toEqual({ [field]: 1 });
    expect(parseOptions(schema, { [field]: maxTimerMs }, { what: 'options' })).toEqual({ [field]: maxTimerMs });
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1000', null])('millisecondsSchema rejects %s', (value) => {
    expect(millisecondsSchema.safeParse(value).success).toBe(false);
    expect(rejection(createSandboxOptionsSchema, { idleTimeoutMs: value }).argument).toBe('idleTimeoutMs');
  });

  it('maxTimerMs is 2**31 - 1', () => {
    expect(maxTimerMs).toBe(2 ** 31 - 1);
  });
});

describe('limits', () => {
  it.each([
    [{ pidsLimit: 2 ** 31 }, 'pidsLimit'],
    [{ pidsLimit: maxPidsLimit + 1 }, 'pidsLimit'],
    [{ pidsLimit: 7 }, 'pidsLimit'],
    [{ memoryMiB: maxMemoryMiB + 1 }, 'memoryMiB'],
    [{ memoryMiB: 2 ** 53 }, 'memoryMiB'],
    [{ memoryMiB: 15 }, 'memoryMiB'],
    [{ cpu: 1025 }, 'cpu'],
    [{ cpu: 0 }, 'cpu'],
    [{ cpu: Number.POSITIVE_INFINITY }, 'cpu'],
    [{ cpu: Number.NaN }, 'cpu'],
  ])('rejects %j naming %s', (value, field) => {
    expect(rejection(createSandboxOptionsSchema, value).argument).toBe(field);
  });

  it.each([{ pidsLimit: maxPidsLimit }, { pidsLimit: 8 }, { memoryMiB: maxMemoryMiB }, { memoryMiB: 16 }, { cpu: 1024 }, { cpu: 0.25 }])(
    'accepts %j',
    (value) => {
      expect(parseOptions(createSandboxOptionsSchema, value, { what: 'options' })).toEqual(value);
    },
  );

  it.each([0, -1, 1.5, Number.POSITIVE_INFINITY])('maxOutputBytes %s is rejected', (value) => {
    expect(rejection(runOptionsSchema, { maxOutputBytes: value }).argument).toBe('maxOutputBytes');
  });
});

describe('tags', () => {
  const invalid: Array<[string, unknown]> = [
    ['an empty key', { '': 'x' }],
    ['a 64-character key', { ['k'.repeat(64)]: 'x' }],
    ['a 256-character value', { k: 'v'.repeat(256) }],
    ['a number value', { a: 5 }],
    ['a null value', { a: null }],
    ['an object value', { a: { b: 'c' } }],
    ['65 tags', bigTags(65)],
    ['a NUL byte', { a: 'b\0' }],
    ['an array', ['a']],
    ['a string', 'team=a'],
    ['null', null],
  ];

  it.each(invalid)('tagsSchema rejects %s, and create and list name tags', (_, tags) => {
    expect(tagsSchema.safeParse(tags).success).toBe(false);
    expect(rejection(createSandboxOptionsSchema, { tags }).argument).toBe('tags');
    expect(rejection(listSandboxesOptionsSchema, { tags }).argument).toBe('tags');
  });

  it('accepts the limits exactly, and copies the tags', () => {
    const tags = { ['k'.repeat(63)]: 'v'.repeat(255), empty: '' };
    const parsed = parseOptions(tagsSchema, tags, { what: 'tags' });
    expect(parsed).toEqual(tags);
    tags.empty = 'changed';
    expect(parsed.empty).toBe('');
    expect(Object.keys(parseOptions(tagsSchema, bigTags(64), { what: 'tags' }))).toHaveLength(64);
    expect(parseOptions(listSandboxesOptionsSchema, { tags: { team: 'a' } }, { what: 'list options' })).toEqual({ tags: { team: 'a' } });
  });

  it('the message names the offending key', () => {
    expect(rejection(tagsSchema, { owner: 5 }).message).toContain('"owner"');
  });
});

describe('signal names', () => {
  const notSignals = ['SIGFOO', '', 'sigterm', 'KILL', 'SIGPWR', ' SIGTERM', 9, 15, {}, null, undefined, ['SIGTERM']];
  it.each(notSignals)('%j is not a signal name', (value) => {
    expect(signalNameSchema.safeParse(value).success).toBe(false);
    expect(isSandboxSignal(value)).toBe(false);
  });

  const portable = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  portable.push('SIGSTOP', 'SIGCONT', 'SIGALRM', 'SIGABRT', 'SIGPIPE', 'SIGWINCH');
  it.each(portable)('%s is a signal name', (name) => {
    expect(signalNameSchema.parse(name)).toBe(name);
    expect(isSandboxSignal(name)).toBe(true);
  });

  it('every signal name is one this host knows', () => {
    const known = Object.keys(osConstants.signals);
    expect(sandboxSignals.filter((name) => !known.includes(name))).toEqual([]);
  });

  it('a bad signal name through parseOptions is an invalid argument', () => {
    expect(() => parseOptions(signalNameSchema, 'SIGBOGUS', { what: 'signal' })).toThrow(SandboxInvalidArgumentError);
    expect(rejection(signalNameSchema, 'SIGBOGUS').message).toMatch(/SIGTERM/);
  });
});

describe('the signal option must be an AbortSignal', () => {
  const schemas = [
    ['create', createSandboxOptionsSchema],
    ['exec', execOptionsSchema],
    ['run', runOptionsSchema],
    ['list', listSandboxesOptionsSchema],
    ['signal options', signalOptionsSchema],
    ['write', writeFileOptionsSchema],
    ['remove', removeOptionsSchema],
  ] as const;

  it.each(schemas)('%s: a plain object, a string or an AbortController is rejected naming signal', (_, schema) => {
    for (const signal of [{ aborted: false }, 'abort', new AbortController()]) {
      const error = rejection(schema, { signal });
      expect(error.argument).toBe('signal');
      expect(error.message).toContain('AbortSignal');
    }
  });

  it.each(schemas)('%s: a real AbortSignal is accepted', (_, schema) => {
    const signal = new AbortController().signal;
    expect(parseOptions(schema, { signal }, { what: 'options' })).toEqual({ signal });
  });
});

describe('files options', () => {
  it.each([-1, 0o10000, 1.5, '644'])('write mode %j is rejected', (mode) => {
    expect(rejection(writeFileOptionsSchema, { mode }).argument).toBe('mode');
  });

  it('write mode and remove recursive are accepted', () => {
    expect(parseOptions(writeFileOptionsSchema, { mode: 0o755 }, { what: 'write options' })).toEqual({ mode: 0o755 });
    expect(parseOptions(removeOptionsSchema, { recursive: true }, { what: 'remove options' })).toEqual({ recursive: true });
    expect(rejection(removeOptionsSchema, { recursive: 'yes' }).argument).toBe('recursive');
  });
});

describe('checkWriteData', () => {
  it.each([
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['a plain object', { data: 'x' }],
    ['an array', [1, 2, 3]],
    ['a boolean', true],
    ['another typed array', new Int16Array(2)],
  ])('rejects %s as an invalid argument named data', (_, value) => {
    let caught: unknown;
    try {
      checkWriteData(value, 'test-provider');
    } catch (error) {
      caught = error;
    }
    expect(SandboxInvalidArgumentError.isInstance(caught)).toBe(true);
    const error = caught as SandboxInvalidArgumentError;
    expect(error.argument).toBe('data');
    expect(error.provider).toBe('test-provider');
  });

  it('passes strings, bytes and streams through, and views an ArrayBuffer as bytes', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const stream = new ReadableStream<Uint8Array>();
    expect(checkWriteData('text')).toBe('text');
    expect(checkWriteData(bytes)).toBe(bytes);
    expect(checkWriteData(Buffer.from('x'))).toBeInstanceOf(Uint8Array);
    expect(checkWriteData(stream)).toBe(stream);
    const fromBuffer = checkWriteData(bytes.buffer);
    expect(fromBuffer).toBeInstanceOf(Uint8Array);
    expect([...(fromBuffer as Uint8Array)]).toEqual([1, 2, 3]);
  });
});

describe('network allowlists', () => {
  it.each([
    [{ allowCidrs: ['nope'] }, 'network.allowCidrs.0'],
    [{ allowCidrs: ['10.0.0.0'] }, 'network.allowCidrs.0'],
    [{ allowCidrs: ['10.0.0.0/33'] }, 'network.allowCidrs.0'],
    [{ allowDomains: ['bad domain'] }, 'network.allowDomains.0'],
    [{ allowDomains: ['a..b'] }, 'network.allowDomains.0'],
    [{ allowDomains: [''] }, 'network.allowDomains.0'],
  ])('rejects %j naming %s', (network, field) => {
    expect(rejection(createSandboxOptionsSchema, { network }).argument).toBe(field);
  });

  it('accepts IPv4 and IPv6 CIDRs, host names and wildcards, and fills the missing list', () => {
    const allowCidrs = ['10.0.0.0/8', '2001:db8::/32'];
    const parsed = parseOptions(createSandboxOptionsSchema, { network: { allowCidrs } }, { what: 'options' });
    expect(parsed.network).toEqual({ allowCidrs, allowDomains: [] });
    const domains = ['example.org', '*.example.com', 'localhost', 'a-b.c_d.example.'];
    const withDomains = parseOptions(createSandboxOptionsSchema, { network: { allowDomains: domains } }, { what: 'options' });
    expect(withDomains.network).toEqual({ allowCidrs: [], allowDomains: domains });
  });
});
