import { CommandExitError, SandboxInvalidArgumentError, SandboxTimeoutError } from '../errors/index.js';
import type { Sandbox } from '../spec/sandbox.js';
import { readText } from '../streams/index.js';
import { eventually, sandboxProcesses, sleep, type SuiteContext } from './context.js';

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
  const { describe, expect, beforeAll } = context.options;
  describe('exec', () => {
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await context.create({ env: { SUITE_VAR: 'from-create', OVERRIDDEN: 'create' }, workdir: '/workspace' });
    });

    context.test('argv passes through byte for byte (spaces, quotes, $, newlines, unicode, empty)', async () => {
      const script = 'for a in "$@"; do printf "<%s>\\n" "$a"; done';
      const result = await sandbox.run(['/bin/sh', '-c', script, 'sh', ...hostileArguments]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(hostileArguments.map((argument) => `<${argument}>\n`).join(''));
    });

    context.test('a string command runs through sh -c', async () => {
      const result = await sandbox.run('echo $((6 * 7)) | tr 4 X');
      expect(result.stdout).toBe('X2\n');
    });

    context.test('exit codes are data; throwOnNonZeroExit throws CommandExitError', async () => {
      expect((await sandbox.run('exit 7')).exitCode).toBe(7);
      expect((await sandbox.run(['false'])).exitCode).toBe(1);
      const error = await context.expectError(sandbox.run('echo oops >&2; exit 3', { throwOnNonZeroExit: true }), CommandExitError);
      expect(error.exitCode).toBe(3);
      expect(error.stderr).toBe('oops\n');
    });

    context.test('death by signal reports 128+n and the signal name', async () => {
      const result = await sandbox.run(['/bin/sh', '-c', 'kill -TERM $$']);
      expect(result.exitCode).toBe(143);
      expect(result.signal).toBe('SIGTERM');
    });

    context.test('stdout and stderr stay apart', async () => {
      const result = await sandbox.run('echo out1; echo err1 >&2; echo out2; echo err2 >&2');
      expect(result.stdout).toBe('out1\nout2\n');
      expect(result.stderr).toBe('err1\nerr2\n');
    });

    context.test('env from create and exec, exec env wins', async () => {
      const result = await sandbox.run('echo "$SUITE_VAR $OVERRIDDEN $EXEC_ONLY"', { env: { OVERRIDDEN: 'exec', EXEC_ONLY: 'yes' } });
      expect(result.stdout).toBe('from-create exec yes\n');
    });

    context.test('workdir is the default cwd; cwd overrides it', async () => {
      expect((await sandbox.run(['pwd'])).stdout).toBe('/workspace\n');
      expect((await sandbox.run(['pwd'], { cwd: '/tmp' })).stdout).toBe('/tmp\n');
    });

    context.test('stdin reaches the command, and closing it sends EOF', async () => {
      const process = await sandbox.exec(['cat']);
      const writer = process.stdin.getWriter();
      await writer.write(new TextEncoder().encode('first line\n'));
      await writer.write(new TextEncoder().encode('second ünïcødé line\n'));
      await writer.close();
      const [stdout, exit] = await Promise.all([readText(process.stdout), process.wait()]);
      expect(stdout).toBe('first line\nsecond ünïcødé line\n');
      expect(exit.exitCode).toBe(0);
    });

    context.test('streams output as it is produced', async () => {
      const process = await sandbox.exec(['/bin/sh', '-c', 'echo first; sleep 30; echo never']);
      const reader = process.stdout.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toBe('first\n');
      reader.releaseLock();
      await process.kill();
      await process.wait();
    });

    const largeMiB = context.options.scale?.largeOutputMiB ?? 256;
    context.test(`${largeMiB} MiB of stdout read slowly keeps host memory bounded`, async () => {
      const process = await sandbox.exec(['head', '-c', String(largeMiB * 1024 * 1024), '/dev/zero']);
      void process.stderr.cancel();
      const baseline = globalThis.process.memoryUsage().rss;
      let peak = baseline;
      let total = 0;
      let sincePause = 0;
      for await (const chunk of process.stdout) {
        total += chunk.byteLength;
        sincePause += chunk.byteLength;
        if (sincePause >= 4 * 1024 * 1024) {
          sincePause = 0;
          peak = Math.max(peak, globalThis.process.memoryUsage().rss);
          await sleep(20); // slower than the producer: an unbounded buffer would show here
        }
      }
      expect(total).toBe(largeMiB * 1024 * 1024);
      expect((await process.wait()).exitCode).toBe(0);
      const growthMiB = (peak - baseline) / 1024 / 1024;
      expect(growthMiB).toBeLessThan(Math.min(128, largeMiB / 2));
    });

    context.test('kill stops a running command; kill is idempotent', async () => {
      const process = await sandbox.exec(['sleep', '1000']);
      await process.kill();
      await process.kill();
      const exit = await process.wait();
      expect(exit.exitCode).toBe(137);
      expect(exit.signal).toBe('SIGKILL');
    });

    context.test('an exec timeout kills the whole process tree, grandchildren too', async () => {
      const marker = `sleep 31${Math.floor(Math.random() * 90) + 10}`;
      const command = `${marker} & (setsid ${marker} > /dev/null 2>&1 &); ${marker}`;
      const process = await sandbox.exec(['/bin/sh', '-c', command], { timeoutMs: 1_000 });
      void process.stdout.cancel();
      void process.stderr.cancel();
      const error = await context.expectError(process.wait(), SandboxTimeoutError);
      expect(error.timeoutMs).toBe(1_000);
      const gone = await eventually(async () => !(await sandboxProcesses(sandbox)).some((line) => line.includes(marker)), 10_000);
      expect(gone).toBe(true);
    });

    context.test('run with timeoutMs rejects with SandboxTimeoutError', async () => {
      await context.expectError(sandbox.run(['sleep', '60'], { timeoutMs: 500 }), SandboxTimeoutError);
    });

    context.test('an aborted signal rejects with its reason, before and during a command', async () => {
      const before = new AbortController();
      before.abort(new Error('stop before'));
      await expect(sandbox.run(['true'], { signal: before.signal })).rejects.toThrow('stop before');
      const during = new AbortController();
      const running = sandbox.run(['sleep', '60'], { signal: during.signal });
      await sleep(300);
      during.abort(new Error('stop during'));
      await expect(running).rejects.toThrow('stop during');
    });

    context.test('background processes outlive the exec that started them', async () => {
      const marker = `sleep 42${Math.floor(Math.random() * 90) + 10}`;
      await sandbox.run(['/bin/sh', '-c', `(setsid ${marker} > /dev/null 2>&1 &); exit 0`]);
      await sleep(200);
      expect((await sandboxProcesses(sandbox)).some((line) => line.includes(marker))).toBe(true);
    });

    context.test('bad input is a typed error naming the problem', async () => {
      const missing = await context.expectError(sandbox.exec(['definitely-not-a-command-xyz']), SandboxInvalidArgumentError);
      expect(missing.argument).toBe('command');
      const noCwd = await context.expectError(sandbox.exec(['true'], { cwd: '/no/such/dir' }), SandboxInvalidArgumentError);
      expect(noCwd.argument).toBe('cwd');
      await context.expectError(sandbox.exec(['echo', 'nul\0byte']), SandboxInvalidArgumentError);
      await context.expectError(sandbox.exec([]), SandboxInvalidArgumentError);
      await context.expectError(sandbox.exec(['true'], { cwd: 'relative' }), SandboxInvalidArgumentError);
      await context.expectError(sandbox.exec(['true'], { timeoutMs: -5 }), SandboxInvalidArgumentError);
      await context.expectError(sandbox.exec(['true'], { env: { 'BAD NAME': 'x' } }), SandboxInvalidArgumentError);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      await context.expectError(sandbox.exec(['true'], { bogus: 1 } as any), SandboxInvalidArgumentError);
    });
  });
}
