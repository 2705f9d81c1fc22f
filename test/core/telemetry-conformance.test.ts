/**
 * The instrumented local provider passes the conformance suite: the telemetry wrapper is a real
 * `SandboxProvider` (same capabilities, optional members exactly where the local provider has
 * them, behaviour unchanged), with an SDK registered so that every call really makes spans. A
 * counting span processor (nothing kept, so the suite's memory bounds still hold) checks after
 * the suite that every span started was ended and that the main span kinds were made.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, type ReadableSpan, type Span, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { instrumentProvider } from '../../src/telemetry/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { localHostResources } from '../host-resources.js';

const open = new Set<Span>();
const names = new Set<string>();
let ended = 0;
const counting: SpanProcessor = {
  onStart: (span) => void open.add(span),
  onEnd: (span: ReadableSpan) => {
    open.delete(span as Span);
    names.add(span.name);
    ended += 1;
  },
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};
const tracerProvider = new BasicTracerProvider({ spanProcessors: [counting] });

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(tracerProvider);
});
afterAll(() => {
  trace.disable();
  context.disable();
});

const linux = process.platform === 'linux';
describe.skipIf(!linux)(`telemetry wrapper conformance${linux ? '' : ' (skipped: the local provider needs Linux)'}`, () => {
  defineSandboxConformanceSuite({
    name: 'local, instrumented',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: localCapabilities,
    createProvider: () => instrumentProvider(createLocalSandboxProvider()),
    // Smaller than the local suite's own run: this one is about the wrapper, not the sizes.
    scale: { largeFileMiB: 16, leakCycles: 50 },
    hostResources: () => localHostResources(),
  });
});

it.skipIf(!linux)(`every span the suite made was ended${linux ? '' : ' (skipped: the local provider needs Linux)'}`, async () => {
  // Exec spans end when their command's wait() settles; after the suite's sandboxes are gone, all have.
  await expect.poll(() => open.size, { timeout: 30_000 }).toBe(0);
  expect(ended).toBeGreaterThan(100);
  for (const name of [
    'sandport.create',
    'sandport.exec',
    'sandport.run',
    'sandport.files.write',
    'sandport.files.read',
    'sandport.terminate',
  ])
    expect(names, name).toContain(name);
});
