import { CommandExitError, SandboxInvalidArgumentError, SandboxTimeoutError } from '../errors/index.js';
import { readText } from '../streams/index.js';
import { eventually, sandboxProcesses, sleep, type SuiteContext } from './context.js';
import { MemoryGrowth, boundedMemoryLimitMiB, expectBoundedGrowth } from './memory.js';

/** The bounded-memory stream is never smaller than this, so that it dwarfs the bound. */
export const minimumLargeOutputMiB = 192;

const hostileArguments = [
  'with space',
  "single'quote",
  'double"quote',
  '$HOME and $(id) and `id`',
  'new\nline',
  'tab\there',
  'ünïcødé ✓ 漢字 🚀',
  '',
  '*',
  'back\\slash',
  '-n',
  '--',
];

export function execTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  describe('exec', () => {
    const sandbox = context.sharedSandbox({ env: { SUITE_VAR: 'from-create', OVERRIDDEN: 'create' }, workdir: '/workspace' });

    context.test('exec.argv', 'argv passes through byte for byte (spaces, quotes, $, newlines, unicode, empty)', async () => {
      const script = 'for a in "$@"; do printf "<%s>\\n" "$a"; done';
      const result = await sandbox().run(['/bin/sh', '-c', script, 'sh', ...hostileArguments]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(hostileArguments.map((argument) => `<${argument}>\n`).join(''));
    });

    context.test('exec.string-command', 'a string command runs through sh -c', async () => {
      const result = await sandbox().run('echo $((6 * 7)) | tr 4 X');
      expect(result.stdout).toBe('X2\n');
    });

    context.test('exec.exit-codes', 'exit codes are data; throwOnNonZeroExit throws CommandExitError', async () => {
      expect((await sandbox().run('exit 7')).exitCode).toBe(7);
      expect((await sandbox().run(['false'])).exitCode).toBe(1);
      const error = await context.expectError(sandbox().run('echo oops >&2; exit 3', { throwOnNonZeroExit: true }), CommandExitError);
      expect(error.exitCode).toBe(3);
      // Where the provider merges the streams, stderr output is on stdout.
      expect(caps.exec.separateStderr ? error.stderr : error.stdout).toBe('oops\n');
    });

    context.test('exec.signal-exit', 'death by signal reports 128+n and the signal name', async () => {
      const result = await sandbox().run(['/bin/sh', '-c', 'kill -TERM $$']);
      expect(result.exitCode).toBe(143);
      expect(result.signal).toBe('SIGTERM');
    });

    context.test(
      'exec.stderr-apart',
      'stdout and stderr stay apart',
      async () => {
        const result = await sandbox().run('echo out1; echo err1 >&2; echo out2; echo err2 >&2');
        expect(result.stdout).toBe('out1\nout2\n');
        expect(result.stderr).toBe('err1\nerr2\n');
      },
      caps.exec.separateStderr ? undefined : 'the provider merges stderr into stdout (exec.separateStderr false)',
    );

    context.test(
      'exec.stderr-merged',
      'with exec.separateStderr false, stderr output appears on stdout',
      async () => {
        const result = await sandbox().run('echo out1; echo err1 >&2; echo out2');
        // The interleaving of two pipes is the provider's; the lines must all be there.
        expect(result.stdout.split('\n').filter(Boolean).sort()).toEqual(['err1', 'out1', 'out2']);
        expect(result.stderr).toBe('');
      },
      caps.exec.separateStderr ? 'the provider keeps stderr apart (covered by exec.stderr-apart)' : undefined,
    );

    context.test('exec.env', 'env from create and exec, exec env wins', async () => {
      const result = await sandbox().run('echo "$SUITE_VAR $OVERRIDDEN $EXEC_ONLY"', { env: { OVERRIDDEN: 'exec', EXEC_ONLY: 'yes' } });
      expect(result.stdout).toBe('from-create exec yes\n');
    });

    context.test('exec.workdir', 'workdir is the default cwd; cwd overrides it', async () => {
      expect((await sandbox().run(['pwd'])).stdout).toBe('/workspace\n');
      expect((await sandbox().run(['pwd'], { cwd: '/tmp' })).stdout).toBe('/tmp\n');
    });

    const stdinSkip = !caps.exec.stdin
      ? 'no stdin (exec.stdin false)'
      : !caps.exec.stdinEof
        ? 'closing stdin sends no EOF (exec.stdinEof false)'
        : undefined;
    context.test(
      'exec.stdin-eof',
      'stdin reaches the command, and closing it sends EOF',
      async () => {
        const process = await sandbox().exec(['cat']);
        const writer = process.stdin.getWriter();
        await writer.write(new TextEncoder().encode('first line\n'));
        await writer.write(new TextEncoder().encode('second ünïcødé line\n'));
        await writer.close();
        const [stdout, exit] = await Promise.all([readText(process.stdout), process.wait()]);
        expect(stdout).toBe('first line\nsecond ünïcødé line\n');
        expect(exit.exitCode).toBe(0);
      },
      stdinSkip,
    );

    context.test(
      'exec.run-stdin',
      'run({ stdin }) feeds a string or bytes, then EOF',
      async () => {
        expect((await sandbox().run(['cat'], { stdin: 'from run ünï\n' })).stdout).toBe('from run ünï\n');
        const bytes = new Uint8Array([0, 1, 2, 255, 10]);
        expect((await sandbox().run(['wc', '-c'], { stdin: bytes })).stdout.trim()).toBe('5');
        // No stdin at all is an immediate EOF, so a reader of stdin ends.
        expect((await sandbox().run(['cat'])).stdout).toBe('');
      },
      stdinSkip,
    );

    context.test('exec.max-output', 'maxOutputBytes keeps the first bytes and sets truncated', async () => {
      const cut = await sandbox().run("head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2", { maxOutputBytes: 1000 });
      expect(cut.exitCode).toBe(0);
      expect(cut.stdout).toBe('a'.repeat(1000));
      expect(cut.truncated).toBe(true);
      const whole = await sandbox().run(['printf', 'short'], { maxOutputBytes: 1000 });
      expect(whole.stdout).toBe('short');
      expect(whole.truncated).toBe(false);
    });

    context.test(
      'exec.streaming',
      'output arrives before the command exits',
      async () => {
        const process = await sandbox().exec(['/bin/sh', '-c', 'echo first; sleep 30; echo never']);
        const reader = process.stdout.getReader();
        const first = await reader.read();
        expect(new TextDecoder().decode(first.value)).toBe('first\n');
        reader.releaseLock();
        await process.kill();
        await process.wait();
      },
      caps.exec.streaming ? undefined : 'output arrives only when the command exits (exec.streaming false)',
    );

    const largeMiB = Math.max(minimumLargeOutputMiB, context.options.scale?.largeOutputMiB ?? 256);
    context.test(
      'exec.large-output-bounded-memory',
      `a large stdout read slowly keeps host memory growth under ${boundedMemoryLimitMiB} MiB`,
      async () => {
        const process = await sandbox().exec(['head', '-c', String(largeMiB * 1024 * 1024), '/dev/zero']);
        void process.stderr.cancel();
        const growth = new MemoryGrowth();
        let total = 0;
        let sincePause = 0;
        for await (const chunk of process.stdout) {
          total += chunk.byteLength;
          sincePause += chunk.byteLength;
          if (sincePause >= 4 * 1024 * 1024) {
            sincePause = 0;
            growth.sample();
            await sleep(20); // slower than the producer: an unbounded buffer would show here
          }
        }
        expect(total).toBe(largeMiB * 1024 * 1024);
        expect((await process.wait()).exitCode).toBe(0);
        expectBoundedGrowth(growth, `reading ${largeMiB} MiB`);
      },
    );

    context.test(
      'exec.kill',
      'kill stops a running command; kill is idempotent',
      async () => {
        const process = await sandbox().exec(['sleep', '1000']);
        await process.kill();
        await process.kill();
        const exit = await process.wait();
        expect(exit.exitCode).toBe(137);
        expect(exit.signal).toBe('SIGKILL');
      },
      caps.exec.kill ? undefined : 'the provider cannot kill a command (exec.kill false)',
    );

    context.test(
      'exec.kill-signal',
      "kill('SIGTERM') delivers that signal",
      async () => {
        const process = await sandbox().exec(['sleep', '1000']);
        await process.kill('SIGTERM');
        const exit = await process.wait();
        expect(exit.exitCode).toBe(143);
        expect(exit.signal).toBe('SIGTERM');
      },
      caps.exec.kill && caps.exec.signals ? undefined : 'the provider cannot send a chosen signal (exec.kill or exec.signals false)',
    );

    context.test('exec.timeout-tree', 'an exec timeout kills the whole process tree, grandchildren too', async () => {
      const marker = `sleep 31${Math.floor(Math.random() * 90) + 10}`;
      const command = `${marker} & (setsid ${marker} > /dev/null 2>&1 &); ${marker}`;
      const process = await sandbox().exec(['/bin/sh', '-c', command], { timeoutMs: 1_000 });
      void process.stdout.cancel();
      void process.stderr.cancel();
      const error = await context.expectError(process.wait(), SandboxTimeoutError);
      expect(error.timeoutMs).toBe(1_000);
      const gone = await eventually(async () => !(await sandboxProcesses(sandbox())).some((line) => line.includes(marker)), 10_000);
      expect(gone).toBe(true);
    });

    context.test('exec.run-timeout', 'run with timeoutMs rejects with SandboxTimeoutError', async () => {
      await context.expectError(sandbox().run(['sleep', '60'], { timeoutMs: 500 }), SandboxTimeoutError);
    });

    context.test('exec.abort', 'an aborted signal rejects with its reason, before and during a command', async () => {
      const before = new AbortController();
      const beforeReason = new Error('stop before');
      before.abort(beforeReason);
      await expect(sandbox().run(['true'], { signal: before.signal })).rejects.toBe(beforeReason);
      const during = new AbortController();
      const duringReason = new Error('stop during');
      const running = sandbox().run(['sleep', '60'], { signal: during.signal });
      await sleep(300);
      during.abort(duringReason);
      await expect(running).rejects.toBe(duringReason);
    });

    context.test('exec.background', 'background processes outlive the exec that started them', async () => {
      const marker = `sleep 42${Math.floor(Math.random() * 90) + 10}`;
      await sandbox().run(['/bin/sh', '-c', `(setsid ${marker} > /dev/null 2>&1 &); exit 0`]);
      await sleep(200);
      expect((await sandboxProcesses(sandbox())).some((line) => line.includes(marker))).toBe(true);
    });

    context.test('exec.bad-input', 'bad input is a typed error naming the problem', async () => {
      const missing = await context.expectError(sandbox().exec(['definitely-not-a-command-xyz']), SandboxInvalidArgumentError);
      expect(missing.argument).toBe('command');
      const noCwd = await context.expectError(sandbox().exec(['true'], { cwd: '/no/such/dir' }), SandboxInvalidArgumentError);
      expect(noCwd.argument).toBe('cwd');
      await context.expectError(sandbox().exec(['echo', 'nul\0byte']), SandboxInvalidArgumentError);
      await context.expectError(sandbox().exec([]), SandboxInvalidArgumentError);
      await context.expectError(sandbox().exec(['true'], { cwd: 'relative' }), SandboxInvalidArgumentError);
      await context.expectError(sandbox().exec(['true'], { timeoutMs: -5 }), SandboxInvalidArgumentError);
      await context.expectError(sandbox().exec(['true'], { env: { 'BAD NAME': 'x' } }), SandboxInvalidArgumentError);
      // biome-ignore lint/suspicious/noExplicitAny: an option the types forbid, to test the runtime check
      await context.expectError(sandbox().exec(['true'], { bogus: 1 } as any), SandboxInvalidArgumentError);
    });
  });
}
