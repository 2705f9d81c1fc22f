import { SandboxNotFoundError } from '../errors/index.js';
import { entrypointBufferBytes } from '../kit/entrypoint.js';
import type { SandboxWarning } from '../spec/events.js';
import type { Sandbox } from '../spec/sandbox.js';
import { lines, readBytes } from '../streams/index.js';
import { eventually, sleep, type SuiteContext } from './context.js';
import { minimumLargeOutputMiB } from './exec-tests.js';
import { MemoryGrowth, boundedMemoryLimitMiB, expectBoundedGrowth } from './memory.js';

/**
 * Output that may still be on its way when the first read comes, beyond the kit's 1 MiB: what sat
 * in the adapter's pipes and stream queues, and what the provider itself had not sent yet. A
 * provider that keeps the command's log and streams it to a follower (Daytona) lets the command
 * run up to a few MiB ahead of a follower that is slow (the Daytona emulator allows 4 MiB), and
 * none of that is dropped once reading began. Seen in a CI run: 6 MiB read of the 16 MiB the test
 * writes. The bound still fails an entrypoint buffer that keeps all of it, or half of it.
 */
const inFlightSlackBytes = 6 * 1024 * 1024;
/** How long the entrypoint may take to reach a point the test waits for (a liveness bound, not a speed check). */
const progressTimeoutMs = 60_000;

/** The entrypoint stdio of a sandbox, failing the test when the provider did not expose it. */
function stdioOf(sandbox: Sandbox) {
  const { stdout, stderr, stdin } = sandbox;
  if (!stdout || !stderr || !stdin) throw new Error('sandbox.stdout, stderr and stdin must exist when capabilities.entrypointStdio');
  return { stdout, stderr, stdin };
}

/** Reads a stream one line at a time without ever cancelling it (unlike breaking out of `for await`). */
function lineReader(stream: ReadableStream<Uint8Array>): () => Promise<string | undefined> {
  const iterator = lines(stream);
  return async () => {
    const next = await iterator.next();
    return next.done ? undefined : next.value;
  };
}

/** Waits until the sandbox has `path`: the entrypoint got that far. */
async function reached(sandbox: Sandbox, path: string): Promise<boolean> {
  return eventually(() => sandbox.files.exists(path), progressTimeoutMs);
}

export function entrypointTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const unsupported = context.capabilities.entrypointStdio
    ? undefined
    : 'the provider does not expose the entrypoint stdio (entrypointStdio false)';
  const encoder = new TextEncoder();

  describe('entrypoint stdio', () => {
    context.test(
      'entrypoint.output',
      'a running entrypoint’s stdout and stderr are read line by line, including what it wrote before the first read; each property is one stream',
      async () => {
        const script = [
          'echo early-out; echo early-err >&2; touch /tmp/sandport-early',
          'while [ ! -e /tmp/sandport-go ]; do sleep 0.1; done',
          'echo late-out; echo late-err >&2',
          'exec sleep 100000',
        ].join('\n');
        const sandbox = await context.create({ command: ['/bin/sh', '-c', script] });
        const { stdout, stderr } = stdioOf(sandbox);
        expect(sandbox.stdout, 'sandbox.stdout is the same stream on every read').toBe(stdout);
        expect(sandbox.stderr, 'sandbox.stderr is the same stream on every read').toBe(stderr);
        expect(sandbox.stdin, 'sandbox.stdin is the same stream on every read').toBe(sandbox.stdin);
        // Written before anybody reads: the sandbox kept it.
        expect(await reached(sandbox, '/tmp/sandport-early'), 'the entrypoint never started').toBe(true);
        const outLine = lineReader(stdout);
        const errLine = lineReader(stderr);
        expect(await outLine()).toBe('early-out');
        expect(await errLine()).toBe('early-err');
        // Written while the reader waits: it arrives as the entrypoint runs, not at its exit.
        await sandbox.files.write('/tmp/sandport-go', '');
        expect(await outLine()).toBe('late-out');
        expect(await errLine()).toBe('late-err');
        expect((await sandbox.poll()).state).toBe('running');
        expect(sandbox.stdout, 'still the same stream after reading').toBe(stdout);
        await sandbox.terminate();
        expect(await outLine(), 'stdout ends once the entrypoint is gone').toBeUndefined();
        expect(await errLine(), 'stderr ends once the entrypoint is gone').toBeUndefined();
      },
      unsupported,
    );

    context.test(
      'entrypoint.stdin',
      'sandbox.stdin reaches the entrypoint; wait() then reports its exit code; writes after the exit are discarded',
      async () => {
        const sandbox = await context.create({ command: ['/bin/sh', '-c', 'read line; echo "got:$line"; exit 3'] });
        const { stdout, stdin } = stdioOf(sandbox);
        const writer = stdin.getWriter();
        await writer.write(encoder.encode('hello sandbox\n'));
        const outLine = lineReader(stdout);
        expect(await outLine()).toBe('got:hello sandbox');
        expect(await sandbox.wait()).toMatchObject({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 3 });
        expect(await outLine(), 'stdout ends with the entrypoint').toBeUndefined();
        await writer.write(encoder.encode('nobody reads this\n'));
        await writer.close();
      },
      unsupported,
    );

    context.test(
      'entrypoint.create-signal',
      'aborting the create’s signal after create resolved leaves the entrypoint running: it still reads stdin and its exit ends the sandbox',
      async () => {
        const controller = new AbortController();
        const sandbox = await context.create({
          command: ['/bin/sh', '-c', 'read line; echo "got:$line"; exit 4'],
          signal: controller.signal,
        });
        controller.abort(new Error('the caller gave up after create'));
        const { stdout, stdin } = stdioOf(sandbox);
        const writer = stdin.getWriter();
        await writer.write(encoder.encode('still here\n'));
        expect(await lineReader(stdout)()).toBe('got:still here');
        expect(await sandbox.wait()).toMatchObject({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 4 });
      },
      unsupported,
    );

    context.test(
      'entrypoint.stdin-eof',
      'closing sandbox.stdin is EOF for the entrypoint (cat echoes its input and exits 0)',
      async () => {
        const sandbox = await context.create({ command: ['cat'] });
        const { stdout, stdin } = stdioOf(sandbox);
        const writer = stdin.getWriter();
        await writer.write(encoder.encode('one\n'));
        await writer.write(encoder.encode('two\n'));
        await writer.close();
        expect(new TextDecoder().decode(await readBytes(stdout))).toBe('one\ntwo\n');
        expect(await sandbox.wait()).toMatchObject({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 0 });
      },
      unsupported,
    );

    context.test(
      'entrypoint.no-command',
      'without a command, stdout and stderr are closed from the start and writes to stdin resolve',
      async () => {
        const sandbox = await context.create();
        const { stdout, stderr, stdin } = stdioOf(sandbox);
        expect(sandbox.stdout, 'sandbox.stdout is the same stream on every read').toBe(stdout);
        expect((await stdout.getReader().read()).done).toBe(true);
        expect((await stderr.getReader().read()).done).toBe(true);
        const writer = stdin.getWriter();
        await writer.write(encoder.encode('discarded\n'));
        await writer.close();
        expect((await sandbox.poll()).state).toBe('running');
        await sandbox.terminate();
      },
      unsupported,
    );

    const halfBytes = 8 * 1024 * 1024;
    context.test(
      'entrypoint.unread-bounded',
      'unread output never stalls the entrypoint: the latest 1 MiB is kept, and a warning event names the stream and the bytes dropped',
      async () => {
        const script = [
          // Two halves, so the test can tell that the latest output was kept, not the oldest.
          `head -c ${halfBytes} /dev/zero | tr '\\0' a`,
          `head -c ${halfBytes} /dev/zero | tr '\\0' b`,
          'touch /tmp/sandport-written',
          'while [ ! -e /tmp/sandport-go ]; do sleep 0.1; done',
          "printf '\\nend\\n'",
          'exit 0',
        ].join('\n');
        const tail = '\nend\n';
        const totalBytes = 2 * halfBytes + tail.length;
        const warnings: SandboxWarning[] = [];
        let sandbox: Sandbox | undefined;
        const onWarning = (event: { sandboxId: string | undefined; warning: SandboxWarning }) => {
          if (event.sandboxId === sandbox?.id) warnings.push(event.warning);
        };
        context.provider.events.on('warning', onWarning);
        try {
          sandbox = await context.create({ command: ['/bin/sh', '-c', script] });
          const { stdout } = stdioOf(sandbox);
          expect(await reached(sandbox, '/tmp/sandport-written'), 'the entrypoint stalled on output nobody read').toBe(true);
          // This write is what lets the entrypoint exit. Where the sandbox ends with its entrypoint
          // (Modal), the write's own answer can come after that end and report the sandbox gone,
          // as the real service does; the file was written, and what follows checks the exit.
          await sandbox.files.write('/tmp/sandport-go', '').catch((error: unknown) => {
            if (!SandboxNotFoundError.isInstance(error)) throw error;
          });
          const bytes = await readBytes(stdout);
          const text = new TextDecoder().decode(bytes);
          expect(text.endsWith(tail), 'what came last is there').toBe(true);
          expect(text.includes('a'), 'the oldest output was dropped, not the latest').toBe(false);
          expect(bytes.byteLength).toBeGreaterThanOrEqual(entrypointBufferBytes);
          expect(bytes.byteLength).toBeLessThanOrEqual(entrypointBufferBytes + inFlightSlackBytes + tail.length);
          expect(await sandbox.wait()).toMatchObject({ reason: 'entrypoint-exited', exitCode: 0 });
          const dropped = () => warnings.filter((warning) => warning.type === 'other' && /stdout/.test(warning.message));
          expect(await eventually(() => dropped().length > 0, progressTimeoutMs), 'no warning event about the dropped stdout').toBe(true);
          const warning = dropped()[0] as { message: string };
          const count = /(\d+) bytes/.exec(warning.message)?.[1];
          expect(count, `the warning names the bytes dropped: ${warning.message}`).toBeDefined();
          expect(Number(count) + bytes.byteLength, 'dropped plus read is everything written').toBe(totalBytes);
        } finally {
          context.provider.events.off('warning', onWarning);
        }
      },
      unsupported,
    );

    const largeMiB = Math.max(minimumLargeOutputMiB, context.options.scale?.largeOutputMiB ?? 256);
    context.test(
      'entrypoint.backpressure',
      `once read, a slow reader of the entrypoint's stdout keeps host memory growth under ${boundedMemoryLimitMiB} MiB and loses nothing`,
      async () => {
        const size = largeMiB * 1024 * 1024;
        const script = `while [ ! -e /tmp/sandport-go ]; do sleep 0.1; done; exec head -c ${size} /dev/zero`;
        const sandbox = await context.create({ command: ['/bin/sh', '-c', script] });
        const { stdout } = stdioOf(sandbox);
        const growth = new MemoryGrowth();
        let total = 0;
        // The first read is asked for before the output starts, so nothing is dropped.
        const reading = (async () => {
          let sincePause = 0;
          for await (const chunk of stdout) {
            total += chunk.byteLength;
            sincePause += chunk.byteLength;
            if (sincePause >= 4 * 1024 * 1024) {
              sincePause = 0;
              growth.sample();
              await sleep(20); // slower than the producer: an unbounded buffer would show here
            }
          }
        })();
        await sandbox.files.write('/tmp/sandport-go', '');
        await reading;
        expect(total).toBe(size);
        expect(await sandbox.wait()).toMatchObject({ reason: 'entrypoint-exited', exitCode: 0 });
        expectBoundedGrowth(growth, `reading ${largeMiB} MiB`);
      },
      unsupported,
    );
  });
}
