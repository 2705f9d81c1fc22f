import { describe, expect, it } from 'vitest';
import { SandboxInvalidArgumentError, createSandboxOptionsSchema, execOptionsSchema, parseOptions } from '../../src/kit/index.js';

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
