import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxRegistry,
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxNotFoundError,
  SandboxProviderError,
  createSandboxOptionsSchema,
  fromCallbacks,
  withStartSignal,
  startExecEntrypoint,
  fromConnectionError,
  fromGrpcStatus,
  fromHttpStatus,
  parseTags,
  portNumbers,
  prependChunk,
  readBytes,
  readStartMarker,
  readText,
  refuseUnsupported,
  toWebWritable,
  volumeMounts,
  wholeGiB,
  wholeMinutes,
  wholeSeconds,
  wrapArgv,
  type SandboxCapabilities,
} from '../../src/kit/index.js';
import type { SandboxProcess } from '../../src/index.js';

const everything: SandboxCapabilities = {
  isolation: 'container',
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: false },
  files: { watch: false },
  entrypointStdio: false,
  tunnels: true,
  tunnelsTls: true,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: true,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  pause: false,
  extendTimeout: true,
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: true },
  limits: { cpu: true, memory: true, pids: true },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: 86_400_000 },
  volumes: 'host-path',
  gpu: true,
  images: { reference: true, build: true, snapshot: true },
};
const nothing: SandboxCapabilities = {
  ...everything,
  tunnels: false,
  tunnelsTls: false,
  network: { block: false, allowCidrs: false, allowDomains: false, allowlistViaProxy: false, update: false },
  limits: { cpu: false, memory: false, pids: false },
  timeouts: { lifetime: false, idle: false, maxLifetimeMs: 1000 },
  volumes: false,
  gpu: false,
  images: { reference: false, build: false, snapshot: false },
};

const parse = (options: unknown) => createSandboxOptionsSchema.parse(options);
const capabilityOf = (run: () => unknown): unknown => {
  try {
    run();
  } catch (error) {
    return SandboxCapabilityUnsupportedError.isInstance(error) ? error.capability : error;
  }
  return undefined;
};

describe('refuseUnsupported', () => {
  it.each([
    [{ gpu: 'any' }, 'gpu'],
    [{ network: 'block' }, 'network.block'],
    [{ network: { allowCidrs: ['10.0.0.0/8'] } }, 'network.allowCidrs'],
    [{ network: { allowDomains: ['example.com'] } }, 'network.allowDomains'],
    [{ cpu: 1 }, 'limits.cpu'],
    [{ memoryMiB: 256 }, 'limits.memory'],
    [{ pidsLimit: 64 }, 'limits.pids'],
    [{ volumes: { '/mnt': '/tmp' } }, 'volumes'],
    [{ ports: [8080] }, 'tunnels'],
    [{ timeoutMs: 500 }, 'timeouts.lifetime'],
    [{ idleTimeoutMs: 500 }, 'timeouts.idle'],
    [{ image: 'python:3' }, 'images.reference'],
    [{ image: { base: 'x', commands: [] } }, 'images.build'],
    [{ image: { type: 'snapshot', provider: 'test', id: 's' } }, 'images.snapshot'],
  ])('refuses %j with capability %s when the flag is false, accepts it when true', (options, capability) => {
    expect(capabilityOf(() => refuseUnsupported(parse(options), nothing, 'test'))).toBe(capability);
    expect(capabilityOf(() => refuseUnsupported(parse(options), everything, 'test'))).toBeUndefined();
  });

  it('a lifetime past the maximum, a foreign snapshot and duplicate ports are invalid arguments', () => {
    for (const options of [
      { timeoutMs: 86_400_001 },
      { idleTimeoutMs: 86_400_001 },
      { image: { type: 'snapshot', provider: 'other', id: 's' } },
      { ports: [80, 80] },
    ]) {
      expect(() => refuseUnsupported(parse(options), everything, 'test')).toThrow(SandboxInvalidArgumentError);
    }
  });

  it('an encrypted port without TLS tunnels is a warning', () => {
    const warnings = refuseUnsupported(parse({ ports: [{ port: 80, encrypted: true }] }), { ...everything, tunnelsTls: false }, 'test');
    expect(warnings).toEqual([expect.objectContaining({ type: 'unsupported-setting', setting: 'ports.encrypted' })]);
  });
});

describe('normalisers and units', () => {
  it('ports and volumes', () => {
    expect(portNumbers(parse({ ports: [80, { port: 443, encrypted: true }] }).ports, 'test')).toEqual([80, 443]);
    expect(volumeMounts(parse({ volumes: { '/b': '/src', '/a': { source: 'v', readOnly: true } } }).volumes)).toEqual([
      { target: '/a', source: 'v', readOnly: true },
      { target: '/b', source: '/src', readOnly: false },
    ]);
  });

  it('rounds up with a warning only when needed', () => {
    expect(wholeSeconds(2000, 'timeoutMs')).toEqual({ value: 2, warning: undefined });
    expect(wholeSeconds(1500, 'timeoutMs').value).toBe(2);
    expect(wholeSeconds(1500, 'timeoutMs').warning).toMatchObject({ setting: 'timeoutMs' });
    expect(wholeMinutes(61_000, 'timeoutMs').value).toBe(2);
    expect(wholeGiB(1536, 'memoryMiB').value).toBe(2);
    expect(wholeGiB(2048, 'memoryMiB').warning).toBeUndefined();
  });

  it('setTags input uses the create schema', () => {
    expect(parseTags({ a: 'b' })).toEqual({ a: 'b' });
    for (const bad of [
      { '': 'x' },
      { a: 5 },
      { a: null },
      'tags',
      ['a'],
      null,
      undefined,
      { ['k'.repeat(64)]: 'v' },
      { a: 'v'.repeat(256) },
    ]) {
      expect(() => parseTags(bad, 'test')).toThrow(SandboxInvalidArgumentError);
    }
  });
});

describe('exec wrapper', () => {
  it('reads the start report and hands over the rest byte for byte', async () => {
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array([0, ...new TextEncoder().encode('SPX:o')]));
        controller.enqueue(new TextEncoder().encode('k\nhello'));
        controller.enqueue(new TextEncoder().encode(' world'));
        controller.close();
      },
    });
    const { report, stdout } = await readStartMarker(source);
    expect(report).toBe('ok');
    expect(await readText(stdout)).toBe('hello world');
  });

  it('output that is not a report is kept whole', async () => {
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('plain output\n'));
        controller.close();
      },
    });
    const { report, stdout } = await readStartMarker(source);
    expect(report).toBe('none');
    expect(await readText(stdout)).toBe('plain output\n');
  });

  it('wraps an argv unchanged after the wrapper arguments', () => {
    expect(wrapArgv('id1', ['echo', 'a b'], { cwd: '/w' }).slice(3)).toEqual(['sandport-exec', 'id1', '/w', '1', '', 'echo', 'a b']);
    expect(wrapArgv('id1', ['cat'], { stdinNull: true }).slice(3)).toEqual(['sandport-exec', 'id1', '', '1', 'null', 'cat']);
  });
});

describe('error tables', () => {
  it('maps HTTP statuses', () => {
    const context = { provider: 'p', operation: 'op', sandboxId: 's' };
    expect(SandboxAuthenticationError.isInstance(fromHttpStatus(401, context))).toBe(true);
    expect(SandboxNotFoundError.isInstance(fromHttpStatus(404, context))).toBe(true);
    expect(fromHttpStatus(404, { ...context, path: '/x' }).code).toBe('file_not_found');
    expect(SandboxAlreadyExistsError.isInstance(fromHttpStatus(409, context))).toBe(true);
    expect(SandboxInvalidArgumentError.isInstance(fromHttpStatus(422, context))).toBe(true);
    expect(fromHttpStatus(429, context).retryable).toBe(true);
    expect(fromHttpStatus(503, context).retryable).toBe(true);
    expect(fromHttpStatus(501, context).retryable).toBe(false);
  });

  it('maps gRPC statuses and connection errors', () => {
    const context = { provider: 'p', operation: 'op' };
    expect(SandboxNotFoundError.isInstance(fromGrpcStatus(5, context))).toBe(true);
    expect(fromGrpcStatus(14, context).retryable).toBe(true);
    expect(fromGrpcStatus(3, context).code).toBe('invalid_argument');
    const reset = fromConnectionError(
      new TypeError('fetch failed', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }),
      context,
    );
    expect(SandboxProviderError.isInstance(reset) && reset.retryable).toBe(true);
    expect(fromConnectionError(new Error('other'), context)).toBeUndefined();
  });
});

describe('registry', () => {
  it('reserves unique names and filters by tags', () => {
    const registry = new SandboxRegistry<{ id: string; name: string | undefined; tags: () => Record<string, string> }>('test');
    const release = registry.reserveName('one');
    expect(() => registry.reserveName('one')).toThrow(SandboxAlreadyExistsError);
    registry.add({ id: 'a', name: 'one', tags: () => ({ team: 'x' }) });
    registry.add({ id: 'b', name: undefined, tags: () => ({ team: 'y' }) });
    release();
    expect(registry.byName('one')?.id).toBe('a');
    expect(registry.list({ team: 'y' }).map((entry) => entry.id)).toEqual(['b']);
    registry.remove(registry.get('a')!);
    expect(() => registry.reserveName('one')).not.toThrow();
  });
});

describe('stream bridges', () => {
  it('prependChunk yields the head, then the rest', async () => {
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array([3]));
        controller.close();
      },
    });
    expect([...(await readBytes(prependChunk(source.getReader(), new Uint8Array([1, 2]))))]).toEqual([1, 2, 3]);
  });

  it('fromCallbacks pauses a producer past the bound and resumes it as the reader drains', async () => {
    let paused = 0;
    let resumed = 0;
    const bridge = fromCallbacks({ maxBufferedBytes: 1024, pause: () => paused++, resume: () => resumed++ });
    for (let index = 0; index < 8; index++) bridge.push(new Uint8Array(512));
    expect(paused).toBe(1);
    const reader = bridge.stream.getReader();
    let total = 0;
    for (let index = 0; index < 8; index++) total += (await reader.read()).value!.byteLength;
    expect(resumed).toBe(1);
    bridge.end();
    expect(total).toBe(4096);
    expect((await reader.read()).done).toBe(true);
  });

  it('fromCallbacks errors, never drops, when a producer that cannot pause outruns the bound', async () => {
    const bridge = fromCallbacks({ maxBufferedBytes: 1024 });
    bridge.push(new Uint8Array(1024));
    bridge.push(new Uint8Array(1));
    await expect(readBytes(bridge.stream)).rejects.toThrow(/1024 bytes/);
  });

  it('toWebWritable waits for drain and maps errors after the end', async () => {
    const sink = new PassThrough({ highWaterMark: 16 });
    const writable = toWebWritable(sink, { mapError: () => new SandboxProviderError({ message: 'closed', provider: 'test' }) });
    const writer = writable.getWriter();
    let written = false;
    const write = writer.write(new Uint8Array(64)).then(() => (written = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toBe(false);
    sink.read();
    await write;
    sink.destroy();
    await expect(writer.write(new Uint8Array(1))).rejects.toSatisfy((error) => SandboxProviderError.isInstance(error));
  });
});

describe('providerCall', () => {
  it('retries an idempotent call on a retryable error, with retry events numbered from 1', async () => {
    const { SandboxEmitter, providerCall } = await import('../../src/kit/index.js');
    const events = new SandboxEmitter();
    const attempts: number[] = [];
    events.on('retry', (event) => attempts.push(event.attempt));
    let calls = 0;
    const value = await providerCall(
      { provider: 'p', events, mapError: (error) => error as never },
      'getTags',
      async () => {
        calls++;
        if (calls < 3) throw new SandboxProviderError({ message: 'flaky', provider: 'p', retryable: true });
        return 'ok';
      },
      { idempotent: true },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(3);
    expect(attempts).toEqual([1, 2]);
  });

  it('never retries a call that is not idempotent, and maps raw errors', async () => {
    const { providerCall } = await import('../../src/kit/index.js');
    let calls = 0;
    const failure = new SandboxProviderError({ message: 'mapped', provider: 'p' });
    await expect(
      providerCall({ provider: 'p', mapError: () => failure }, 'create', async () => {
        calls++;
        throw new Error('raw');
      }),
    ).rejects.toBe(failure);
    expect(calls).toBe(1);
  });
});

describe('abortableStream', () => {
  it('errors with signal.reason and cancels the source when the signal aborts mid-read', async () => {
    const { abortableStream } = await import('../../src/kit/index.js');
    let cancelled = false;
    const source = new ReadableStream<Uint8Array>({
      pull: () => new Promise(() => undefined), // never produces: only the abort can end the read
      cancel: () => {
        cancelled = true;
      },
    });
    const controller = new AbortController();
    const reason = new Error('stop reading');
    const reading = readBytes(abortableStream(source, controller.signal));
    controller.abort(reason);
    await expect(reading).rejects.toBe(reason);
    expect(cancelled).toBe(true);
  });
});

describe('withStartSignal', () => {
  it("follows the caller's signal while the start runs, and never after it", async () => {
    const caller = new AbortController();
    let seen: AbortSignal | undefined;
    const started = await withStartSignal(caller.signal, async (signal) => {
      seen = signal;
      return 'started';
    });
    expect(started).toBe('started');
    caller.abort(new Error('later'));
    expect(seen?.aborted).toBe(false);
  });

  it('aborts the start with the reason when the caller aborts during it, or had already', async () => {
    const caller = new AbortController();
    const reason = new Error('gave up');
    const during = withStartSignal(
      caller.signal,
      (signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
    );
    caller.abort(reason);
    await expect(during).rejects.toBe(reason);
    let abortedAtStart: boolean | undefined;
    await withStartSignal(caller.signal, async (signal) => {
      abortedAtStart = signal.aborted;
    });
    expect(abortedAtStart).toBe(true);
  });
});

describe('startExecEntrypoint', () => {
  type Ended = { exitCode?: number; reason: string };
  /** An entrypoint whose exec reports `exitCode` when `exit` is called, and the end calls it saw. */
  function entrypoint(exitCode: number) {
    let exit!: () => void;
    const exited = new Promise<{ exitCode: number }>((resolve) => {
      exit = () => resolve({ exitCode });
    });
    const ends: Ended[] = [];
    const lifecycle = {
      end: async (status: Ended) => {
        ends.push(status);
      },
    };
    const process = { wait: () => exited } as unknown as SandboxProcess;
    return { exit, ends, lifecycle, process };
  }
  const settled = () => new Promise((resolve) => setTimeout(resolve, 20));

  it("ends the sandbox with the exec's exit code when the provider has no end of its own", async () => {
    const { exit, ends, lifecycle, process } = entrypoint(4);
    await startExecEntrypoint(async () => process, { signal: undefined, lifecycle: lifecycle as never });
    expect(ends).toEqual([]);
    exit();
    await settled();
    expect(ends).toEqual([{ state: 'terminated', reason: 'entrypoint-exited', exitCode: 4 }]);
  });

  it("lets the sandbox's own end decide: the exec's 137 (the keeper's exit killed the notifier) comes second", async () => {
    const { exit, ends, lifecycle, process } = entrypoint(137);
    let endSandbox!: () => void;
    const sandboxEnd = () =>
      new Promise<void>((resolve) => {
        endSandbox = () => {
          ends.push({ reason: 'entrypoint-exited', exitCode: 0 });
          resolve();
        };
      });
    await startExecEntrypoint(async () => process, { signal: undefined, lifecycle: lifecycle as never, sandboxEnd });
    exit();
    await settled();
    expect(ends).toEqual([]);
    endSandbox();
    await settled();
    expect(ends[0]).toEqual({ reason: 'entrypoint-exited', exitCode: 0 });
  });

  it("takes the exec's status once the grace ran out without the sandbox ending, and stops observing", async () => {
    const { exit, ends, lifecycle, process } = entrypoint(3);
    let observing: AbortSignal | undefined;
    const sandboxEnd = (signal: AbortSignal) => {
      observing = signal;
      return new Promise<void>(() => undefined);
    };
    await startExecEntrypoint(async () => process, { signal: undefined, lifecycle: lifecycle as never, sandboxEnd, graceMs: 30 });
    exit();
    await settled();
    expect(ends).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(ends).toEqual([{ state: 'terminated', reason: 'entrypoint-exited', exitCode: 3 }]);
    expect(observing?.aborted).toBe(true);
  });
});
