/**
 * Observability: every sandbox call as an OpenTelemetry span, exported.
 *   npx tsx examples/telemetry-export.ts
 * Needs the optional peer `@opentelemetry/api` and an SDK (here the trace SDK with the Node
 * context manager, so that spans nest under the span active at each call):
 *   npm install @opentelemetry/api@^1.9.0 @opentelemetry/sdk-trace-base@^2 @opentelemetry/context-async-hooks@^2
 * Spans go to an in-memory exporter and are printed as a tree when the job is done. To send them
 * to a collector instead, replace the exporter, e.g. with `new ConsoleSpanExporter()` (in
 * `@opentelemetry/sdk-trace-base`) or `new OTLPTraceExporter()` (`@opentelemetry/exporter-trace-otlp-http`)
 * inside a `BatchSpanProcessor`. Agent turns are traced the same way:
 * `await instrumentAgentSession(agent)` makes each `send` a `sandport.agent.turn` span with its
 * `gen_ai.usage.*` tokens and `sandport.agent.cost_usd`.
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SandboxProvider } from 'sandport';
import { instrumentProvider } from 'sandport/telemetry';

// The app's OpenTelemetry setup, done once at start-up (an app using @opentelemetry/sdk-node has this already).
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(tracerProvider);

const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();

// The wrapper is a SandboxProvider like any other: the rest of the app does not change.
const traced = await instrumentProvider(provider);

// One job of the app, as a span of its own: the sandbox calls inside it are its children.
await trace.getTracer('example-app').startActiveSpan('build-report', async (job) => {
  try {
    await using sandbox = await traced.create({ network: 'block', timeoutMs: 10 * 60_000 });
    await sandbox.files.write('/workspace/data.csv', 'region,sales\nnorth,12\nsouth,30\n');
    const sum = await sandbox.run(['awk', '-F,', 'NR > 1 { total += $2 } END { print total }', '/workspace/data.csv']);
    await sandbox.files.write('/workspace/report.txt', `total sales: ${sum.stdout.trim()}\n`);
    console.log((await sandbox.files.readText('/workspace/report.txt')).trim());
    // A failing call shows up as a span with status ERROR and the error's type.
    await sandbox.files.read('/workspace/missing.txt').catch(() => undefined);
  } finally {
    job.end();
  }
});

await tracerProvider.forceFlush();
printTree(exporter.getFinishedSpans());
await tracerProvider.shutdown();

/** Prints spans as an indented tree, in start order, with the attributes worth reading. */
function printTree(spans: ReadableSpan[]): void {
  const shown = ['sandport.provider', 'file.path', 'process.executable.name', 'sandport.exec.exit_code', 'error.type'];
  const children = (parentId: string | undefined) =>
    spans
      .filter((span) => span.parentSpanContext?.spanId === parentId)
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
  const print = (span: ReadableSpan, depth: number) => {
    const attributes = shown.filter((key) => span.attributes[key] !== undefined).map((key) => `${key}=${span.attributes[key]}`);
    const status = span.status.code === 2 ? ' ERROR' : '';
    console.log(`${'  '.repeat(depth)}${span.name}${status}${attributes.length ? ` ${attributes.join(' ')}` : ''}`);
    for (const child of children(span.spanContext().spanId)) print(child, depth + 1);
  };
  for (const root of children(undefined)) print(root, 0);
}
