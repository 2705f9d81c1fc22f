/**
 * sandport/telemetry with the real `@opentelemetry/api` and the SDK's in-memory exporter, on the
 * local provider: the spans of create, exec, run and file calls with their attributes, errors as
 * span status, nesting under an app's active span, an agent turn with its tokens and cost, and
 * the typed error a user without `@opentelemetry/api` gets.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { AgentSession } from '../../src/agent/index.js';
import {
  createSandboxPool,
  SandboxCapabilityUnsupportedError,
  type SandboxError,
  SandboxInvalidArgumentError,
  type Sandbox,
  type SandboxProvider,
} from '../../src/index.js';
import { openTelemetryLoader } from '../../src/telemetry/otel-peer.js';
import { instrumentAgentSession, instrumentProvider } from '../../src/telemetry/index.js';
import { describeWithAgentHarness } from '../agent/harness.js';

const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  // The global registration is what an app's SDK setup does; the wrappers' default tracer reads it.
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(tracerProvider);
});
afterAll(async () => {
  await tracerProvider.shutdown();
  trace.disable();
  context.disable();
});
afterEach(() => exporter.reset());

const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name);
const only = (name: string): ReadableSpan => {
  const found = spans(name);
  expect(found.map((span) => span.name)).toEqual([name]);
  return found[0]!;
};

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** The members a value has, own and inherited (class methods and getters), without Object's. */
function members(value: object): string[] {
  const names = new Set<string>();
  for (let object: object | null = value; object && object !== Object.prototype; object = Object.getPrototypeOf(object))
    for (const key of Reflect.ownKeys(object)) if (key !== 'constructor') names.add(String(key));
  return [...names];
}

describe.skipIf(process.platform !== 'linux')(
  `instrumentProvider on the local provider${process.platform === 'linux' ? '' : ' (skipped: the local provider needs Linux)'}`,
  () => {
    const local = createLocalSandboxProvider();
    let provider: SandboxProvider;
    let sandbox: Sandbox;

    beforeAll(async () => {
      provider = await instrumentProvider(local);
      sandbox = await provider.create({ network: 'block', timeoutMs: 10 * 60_000 });
      exporter.reset();
    }, 120_000);
    afterAll(() => sandbox?.terminate(), 60_000);

    it('create is a span with the provider and the new sandbox id; the wrapper keeps the contract', async () => {
      await using second = await provider.create({ network: 'block', name: `telemetry-${process.pid}` });
      const create = only('sandport.create');
      expect(create.attributes).toMatchObject({
        'sandport.provider': 'local',
        'sandport.sandbox.id': second.id,
        'sandport.sandbox.name': `telemetry-${process.pid}`,
        'sandport.sandbox.network': 'block',
        'sandport.sandbox.warnings': second.warnings.length,
      });
      expect(create.status.code).toBe(SpanStatusCode.UNSET);
      expect(create.instrumentationScope.name).toBe('sandport');
      // A real SandboxProvider: the same capabilities and emitter, the optional members the local one has.
      expect(provider.capabilities).toBe(local.capabilities);
      expect(provider.events).toBe(local.events);
      for (const member of ['fromName', 'list', 'deleteSnapshot', 'openHostRoute'] as const)
        expect(member in provider, member).toBe(typeof local[member] === 'function');
      const raw = await local.fromId(second.id);
      for (const member of ['snapshot', 'extendTimeout', 'updateNetwork', 'pause', 'resume', 'stdout', 'stderr', 'stdin'])
        expect(member in second, member).toBe(members(raw).includes(member));
      expect('watch' in second.files).toBe(typeof raw.files.watch === 'function');
      // The same underlying sandbox is always the same wrapper.
      expect(await provider.fromId(second.id)).toBe(await provider.fromId(second.id));
      expect(spans('sandport.from_id')).toHaveLength(2);
    }, 120_000);

    it('exec spans the command until it exits, with its exit code; run has one too', async () => {
      const started: string[] = [];
      const onStart = ({ execId }: { execId: string }) => started.push(execId);
      provider.events.on('exec-start', onStart);
      const process = await sandbox.exec(['sh', '-c', 'exit 3']);
      provider.events.off('exec-start', onStart);
      expect((await process.wait()).exitCode).toBe(3);
      await expect.poll(() => spans('sandport.exec')).toHaveLength(1);
      const exec = only('sandport.exec');
      expect(exec.attributes).toMatchObject({
        'sandport.provider': 'local',
        'sandport.sandbox.id': sandbox.id,
        'process.executable.name': 'sh',
        'sandport.exec.exit_code': 3,
        'sandport.exec.pty': false,
        // The span and the exec-start/exec-end events name the same exec.
        'sandport.exec.id': started[0],
      });
      expect(started).toHaveLength(1);
      expect(exec.attributes['process.command_line']).toBeUndefined();
      // A non-zero exit is not an error in the contract, so not in the span either.
      expect(exec.status.code).toBe(SpanStatusCode.UNSET);

      const result = await sandbox.run('echo hello');
      expect(result.stdout).toBe('hello\n');
      expect(only('sandport.run').attributes).toMatchObject({
        'sandport.exec.shell': true,
        'sandport.exec.exit_code': 0,
        'sandport.exec.truncated': false,
      });
    }, 60_000);

    it('recordCommandLine records the whole command', async () => {
      const verbose = await instrumentProvider(local, { recordCommandLine: true });
      const same = await verbose.fromId(sandbox.id);
      await same.run(['echo', 'a', 'b']);
      expect(only('sandport.run').attributes['process.command_line']).toBe('echo a b');
    }, 60_000);

    it('file calls are sandport.files.<method> spans with the path and the bytes', async () => {
      await sandbox.files.mkdir('/tmp/telemetry');
      await sandbox.files.write('/tmp/telemetry/a.txt', 'héllo');
      expect(await sandbox.files.readText('/tmp/telemetry/a.txt')).toBe('héllo');
      expect((await sandbox.files.read('/tmp/telemetry/a.txt')).byteLength).toBe(6);
      expect(await sandbox.files.list('/tmp/telemetry')).toHaveLength(1);
      expect((await sandbox.files.stat('/tmp/telemetry/a.txt')).size).toBe(6);
      expect(await sandbox.files.exists('/tmp/telemetry/a.txt')).toBe(true);
      await sandbox.files.remove('/tmp/telemetry', { recursive: true });
      const names = exporter.getFinishedSpans().map((span) => span.name);
      expect(names).toEqual([
        'sandport.files.mkdir',
        'sandport.files.write',
        'sandport.files.read_text',
        'sandport.files.read',
        'sandport.files.list',
        'sandport.files.stat',
        'sandport.files.exists',
        'sandport.files.remove',
      ]);
      for (const span of exporter.getFinishedSpans()) {
        expect(span.attributes['sandport.sandbox.id']).toBe(sandbox.id);
        expect(span.attributes['file.path']).toMatch(/^\/tmp\/telemetry/);
        expect(span.status.code).toBe(SpanStatusCode.UNSET);
      }
      expect(only('sandport.files.write').attributes['sandport.file.bytes']).toBe(6);
      expect(only('sandport.files.read_text').attributes['sandport.file.bytes']).toBe(6);
      expect(only('sandport.files.read').attributes['sandport.file.bytes']).toBe(6);
      expect(only('sandport.files.list').attributes['sandport.file.entries']).toBe(1);
      expect(only('sandport.files.stat').attributes['sandport.file.type']).toBe('file');
      expect(only('sandport.files.exists').attributes['sandport.file.exists']).toBe(true);
      expect(only('sandport.files.remove').attributes['sandport.file.recursive']).toBe(true);
    }, 60_000);

    it('a failed exec and a failed file call end their spans with status ERROR, the exception and error.type', async () => {
      const execError = await failure(sandbox.exec(['/no/such/program']));
      expect(SandboxInvalidArgumentError.isInstance(execError)).toBe(true);
      const exec = only('sandport.exec');
      expect(exec.status).toEqual({ code: SpanStatusCode.ERROR, message: (execError as Error).message });
      expect(exec.attributes['error.type']).toBe('invalid_argument');
      expect(exec.attributes['sandport.exec.exit_code']).toBeUndefined();
      expect(exec.events.map((event) => event.name)).toEqual(['exception']);
      expect(exec.events[0]!.attributes?.['exception.message']).toBe((execError as Error).message);

      const readError = await failure(sandbox.files.read('/tmp/no-such-file-for-telemetry'));
      expect((readError as SandboxError).code).toBe('file_not_found');
      const read = only('sandport.files.read');
      expect(read.status.code).toBe(SpanStatusCode.ERROR);
      expect(read.attributes['error.type']).toBe('file_not_found');

      // A non-zero exit the caller asked to throw on is an error too.
      await failure(sandbox.run('exit 2', { throwOnNonZeroExit: true }));
      expect(only('sandport.run').attributes['error.type']).toBe('command_exit');
    }, 60_000);

    it("calls made under an app's active span are its children; a command's exec nests the same way", async () => {
      const tracer = trace.getTracer('app');
      const parentId = await tracer.startActiveSpan('app.job', async (job) => {
        await sandbox.files.write('/tmp/job.txt', 'job');
        const process = await sandbox.exec(['true']);
        await process.wait();
        await sandbox.run(['cat', '/tmp/job.txt']);
        job.end();
        return job.spanContext().spanId;
      });
      await expect.poll(() => spans('sandport.exec')).toHaveLength(1);
      const job = only('app.job');
      for (const name of ['sandport.files.write', 'sandport.exec', 'sandport.run']) {
        const child = only(name);
        expect(child.parentSpanContext?.spanId, name).toBe(parentId);
        expect(child.spanContext().traceId, name).toBe(job.spanContext().traceId);
      }
      // Outside any span, a call starts a trace of its own.
      await sandbox.files.exists('/tmp/job.txt');
      expect(only('sandport.files.exists').parentSpanContext).toBeUndefined();
    }, 60_000);

    it('a tracer passed in is used instead of the global one', async () => {
      const ownExporter = new InMemorySpanExporter();
      const own = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(ownExporter)] });
      const traced = await instrumentProvider(local, { tracer: own.getTracer('my-app') });
      await (await traced.fromId(sandbox.id)).files.exists('/tmp');
      expect(ownExporter.getFinishedSpans().map((span) => [span.name, span.instrumentationScope.name])).toEqual([
        ['sandport.from_id', 'my-app'],
        ['sandport.files.exists', 'my-app'],
      ]);
      expect(exporter.getFinishedSpans()).toEqual([]);
      await own.shutdown();
    }, 60_000);

    it("the provider's retry and warning events during a call become events of its span, never of an app's span", async () => {
      // A provider whose create meets a transient failure and an adjusted setting, as a cloud adapter's may.
      const flaky: SandboxProvider = {
        specificationVersion: local.specificationVersion,
        id: local.id,
        capabilities: local.capabilities,
        events: local.events,
        fromId: (id, options) => local.fromId(id, options),
        create: async (options) => {
          local.events.emit('retry', { provider: 'local', operation: 'create', attempt: 1, error: new Error('503 from upstream') });
          local.events.emit('warning', {
            provider: 'local',
            sandboxId: undefined,
            warning: { type: 'unsupported-setting', setting: 'ports.encrypted', details: 'plain HTTP' },
          });
          return local.create(options);
        },
      };
      const traced = await instrumentProvider(flaky);
      await using created = await traced.create({ network: 'block' });
      const create = only('sandport.create');
      expect(create.attributes['sandport.sandbox.id']).toBe(created.id);
      expect(create.events.map((event) => [event.name, event.attributes])).toEqual([
        [
          'sandport.retry',
          { 'sandport.retry.operation': 'create', 'sandport.retry.attempt': 1, 'sandport.retry.error': '503 from upstream' },
        ],
        [
          'sandport.warning',
          {
            'sandport.warning.type': 'unsupported-setting',
            'sandport.warning.setting': 'ports.encrypted',
            'sandport.warning.details': 'plain HTTP',
          },
        ],
      ]);
      // Emitted under an app's span but outside any sandport call: the app's span is left alone.
      trace.getTracer('app').startActiveSpan('app.other', (other) => {
        local.events.emit('retry', { provider: 'local', operation: 'list', attempt: 1, error: new Error('x') });
        other.end();
      });
      expect(only('app.other').events).toEqual([]);
    }, 120_000);

    it('a warm pool over the instrumented provider hands over traced sandboxes', async () => {
      await using pool = createSandboxPool(provider, { size: 1, createOptions: { network: 'block', timeoutMs: 10 * 60_000 } });
      await pool.waitUntilWarm({ signal: AbortSignal.timeout(60_000) });
      // The pool's background create has no caller: it is a trace of its own.
      expect(only('sandport.create').parentSpanContext).toBeUndefined();
      const pooled = await pool.acquire();
      try {
        await pooled.files.exists('/tmp');
        expect(only('sandport.files.exists').attributes['sandport.sandbox.id']).toBe(pooled.id);
      } finally {
        await pooled.terminate();
      }
    }, 120_000);

    it('terminate and disposal are spans; the sandbox ends', async () => {
      const ended = await provider.create({ network: 'block' });
      await ended[Symbol.asyncDispose]();
      expect(only('sandport.terminate').attributes['sandport.sandbox.id']).toBe(ended.id);
      expect((await ended.poll()).state).toBe('terminated');
    }, 120_000);
  },
);

describe('options and the optional peer', () => {
  const empty = mkdtempSync(join(tmpdir(), 'sandport-no-otel-'));
  const original = openTelemetryLoader.load;
  afterEach(() => {
    openTelemetryLoader.load = original;
  });
  afterAll(() => rmSync(empty, { recursive: true, force: true }));

  // A provider that is never called: these checks fail before any sandbox call.
  const idle = {
    specificationVersion: 'sandbox-v1',
    id: 'idle',
    capabilities: {},
    events: { on: () => undefined },
    create: () => Promise.reject(new Error('never called')),
    fromId: () => Promise.reject(new Error('never called')),
  } as unknown as SandboxProvider;
  const idleSession = { send: () => undefined } as unknown as AgentSession;

  it('without @opentelemetry/api installed, asking for tracing is a capability error naming the package', async () => {
    // The loader's seam: a require from a directory with no node_modules, a real MODULE_NOT_FOUND.
    openTelemetryLoader.load = async () => createRequire(join(empty, 'app.js'))('@opentelemetry/api');
    for (const attempt of [instrumentProvider(idle), instrumentAgentSession(idleSession)]) {
      const error = await failure(attempt);
      expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
      expect((error as SandboxCapabilityUnsupportedError).capability).toBe('peer:@opentelemetry/api');
      expect((error as Error).message).toBe(
        'sandport/telemetry needs the optional peer dependency "@opentelemetry/api": npm install @opentelemetry/api@^1.9.0',
      );
    }
  });

  it('a tracer that is not one is refused before anything loads, naming the field', async () => {
    openTelemetryLoader.load = () => Promise.reject(new Error('must not load before validating'));
    const error = await failure(instrumentProvider(idle, { tracer: {} as never }));
    expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
    expect((error as SandboxInvalidArgumentError).argument).toBe('tracer');
    const unknown = await failure(instrumentProvider(idle, { trace: true } as never));
    expect((unknown as SandboxInvalidArgumentError).argument).toBe('telemetry options');
    const notProvider = await failure(instrumentProvider({} as SandboxProvider));
    expect((notProvider as SandboxInvalidArgumentError).argument).toBe('provider');
    const notSession = await failure(instrumentAgentSession(undefined as unknown as AgentSession));
    expect((notSession as SandboxInvalidArgumentError).argument).toBe('session');
  });
});

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'telemetry', 'index.js')) && existsSync(join(root, 'dist', 'local', 'index.cjs'));

describe.skipIf(!built)(`the built sandport/telemetry${built ? '' : ' (skipped: dist/ is missing, run npm run build)'}`, () => {
  const hooks = mkdtempSync(join(tmpdir(), 'sandport-otel-hooks-'));
  afterAll(() => rmSync(hooks, { recursive: true, force: true }));
  // A Node resolve hook that answers for @opentelemetry/api as Node does for a package that is
  // not installed: the app's view without the peer, with the package still in node_modules.
  writeFileSync(
    join(hooks, 'hide-otel.mjs'),
    `export async function resolve(specifier, context, next) {
  if (specifier === '@opentelemetry/api') {
    const error = new Error("Cannot find package '@opentelemetry/api' imported from " + context.parentURL);
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}
`,
  );
  writeFileSync(
    join(hooks, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(hooks, 'hide-otel.mjs')).href)});\n`,
  );
  const report = `.then((p) => console.log('traced ' + p.id), (e) => console.log(e.name + ' ' + e.capability))`;
  const esm = `const { instrumentProvider } = await import('sandport/telemetry'); await import('sandport');
const { createLocalSandboxProvider } = await import('sandport/local');
await instrumentProvider(createLocalSandboxProvider())${report};`;
  const cjs = `const { instrumentProvider } = require('sandport/telemetry'); require('sandport');
instrumentProvider(require('sandport/local').createLocalSandboxProvider())${report};`;
  const node = (args: string[]) => {
    const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    return result.stdout.trim();
  };
  const hidden = ['--import', pathToFileURL(join(hooks, 'register.mjs')).href];

  it('loads through import and require, and traces with the peer installed', () => {
    expect(node(['--input-type=module', '-e', esm])).toBe('traced local');
    expect(node(['-e', cjs])).toBe('traced local');
  });

  it('without the peer the core and sandport/telemetry still load; tracing is the capability error', () => {
    expect(node([...hidden, '--input-type=module', '-e', esm])).toBe('SandboxCapabilityUnsupportedError peer:@opentelemetry/api');
    expect(node([...hidden, '-e', cjs])).toBe('SandboxCapabilityUnsupportedError peer:@opentelemetry/api');
  });
});

describeWithAgentHarness('instrumentAgentSession with the real CLI and the fake Messages API', { sandbox: true }, (harness) => {
  it('each turn is a span with the GenAI token attributes and the cost', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/telemetry' }));
    expect(await instrumentAgentSession(agent)).toBe(agent);
    await instrumentAgentSession(agent); // idempotent: still one span per turn
    const tracer = trace.getTracer('app');
    const { result, parentId } = await tracer.startActiveSpan('app.request', async (request) => {
      const turnResult = await agent.send('hello telemetry').result;
      request.end();
      return { result: turnResult, parentId: request.spanContext().spanId };
    });
    expect(result.text).toBe('Echo: hello telemetry');
    await expect.poll(() => spans('sandport.agent.turn')).toHaveLength(1);
    const turn = only('sandport.agent.turn');
    expect(turn.parentSpanContext?.spanId).toBe(parentId);
    expect(turn.status.code).toBe(SpanStatusCode.UNSET);
    const { inputTokens, cacheReadInputTokens, cacheCreationInputTokens } = result.usage;
    expect(inputTokens).toBeGreaterThan(0);
    expect(turn.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.agent.name': 'claude-code',
      'gen_ai.conversation.id': result.sessionId,
      'gen_ai.usage.input_tokens': inputTokens + cacheReadInputTokens + cacheCreationInputTokens,
      'gen_ai.usage.output_tokens': result.usage.outputTokens,
      'gen_ai.usage.cache_read.input_tokens': cacheReadInputTokens,
      'gen_ai.usage.cache_creation.input_tokens': cacheCreationInputTokens,
      'sandport.agent.cost_usd': result.costUsd,
      'sandport.agent.total_cost_usd': result.totalCostUsd,
      'sandport.agent.num_turns': result.numTurns,
      'sandport.agent.permission_denials': 0,
      'sandport.provider': 'local',
      'sandport.sandbox.id': harness.sandbox.id,
    });
    expect(result.usage.outputTokens).toBeGreaterThan(0);
    expect(result.costUsd).toBeGreaterThan(0);

    // A turn that rejects (here: sent after close) records the error on its span.
    await agent.close();
    const closed = await failure(agent.send('too late').result);
    expect((closed as { reason?: string }).reason).toBe('closed');
    await expect.poll(() => spans('sandport.agent.turn')).toHaveLength(2);
    const failed = spans('sandport.agent.turn')[1]!;
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes['error.type']).toBe((closed as SandboxError).code);
  }, 180_000);

  it('a turn that ends with an error result (interrupted) has status ERROR and its reason as error.type', async () => {
    await using agent = await instrumentAgentSession(
      await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/telemetry-interrupt' })),
    );
    const turn = agent.send('SLOW please');
    for await (const message of turn) {
      if (message.type === 'system') {
        await agent.interrupt();
        break;
      }
    }
    const result = await turn.result;
    expect(result.error?.reason).toBe('interrupted');
    await expect.poll(() => spans('sandport.agent.turn')).toHaveLength(1);
    const span = only('sandport.agent.turn');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: result.error!.message });
    expect(span.attributes['error.type']).toBe('interrupted');
    expect(span.attributes['sandport.agent.cost_usd']).toBe(result.costUsd);
  }, 180_000);
});
