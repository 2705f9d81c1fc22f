/**
 * The Vercel emulator's commands as a user of the real `@vercel/sandbox` SDK sees them, through
 * the SDK's own calls as Vercel's docs show them: `runCommand` waiting (one NDJSON stream) and
 * detached (`logs()`, `wait()`, `kill()`), argv passed unchanged, cwd, env, sudo, exit codes,
 * signals, a missing program, and output larger than one chunk.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sandbox } from '@vercel/sandbox';
import { needsImage, startTestEmulator, type TestEmulator } from './vercel/vercel-test-kit.js';

let kit: TestEmulator;
let sandbox: Sandbox;

describe.skipIf(needsImage !== '')(`Vercel emulator: commands through @vercel/sandbox${needsImage}`, () => {
  beforeAll(async () => {
    kit = await startTestEmulator();
    sandbox = await kit.create({ env: { SANDBOX_WIDE: 'from-create' } });
  });
  afterAll(async () => {
    await kit?.close();
  });

  it('runs a command and waits: stdout, stderr and the exit code come back separately', async () => {
    const result = await sandbox.runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(result.exitCode).toBe(3);
    expect(await result.stdout()).toBe('out\n');
    expect(await result.stderr()).toBe('err\n');
    expect(await result.output('both')).toBe('out\nerr\n');
  });

  it('passes argv unchanged, without a shell', async () => {
    const args = ['a b', '$HOME', '"quoted"', '*', ''];
    const result = await sandbox.runCommand('printf', ['[%s]', ...args]);
    expect(await result.stdout()).toBe(args.map((arg) => `[${arg}]`).join(''));
  });

  it('runs in /vercel/sandbox by default, in cwd when given (relative to it)', async () => {
    expect(sandbox.cwd).toBe('/vercel/sandbox');
    expect(await (await sandbox.runCommand('pwd')).stdout()).toBe('/vercel/sandbox\n');
    await sandbox.mkDir('sub/dir');
    expect(await (await sandbox.runCommand({ cmd: 'pwd', cwd: 'sub/dir' })).stdout()).toBe('/vercel/sandbox/sub/dir\n');
    expect(await (await sandbox.runCommand({ cmd: 'pwd', cwd: '/tmp' })).stdout()).toBe('/tmp\n');
  });

  it('gives the sandbox env and the command env (the command wins), and the default user', async () => {
    const result = await sandbox.runCommand({
      cmd: 'sh',
      args: ['-c', 'echo "$SANDBOX_WIDE $ONE $HOME $USER"'],
      env: { ONE: 'from-command' },
    });
    expect(await result.stdout()).toBe('from-create from-command /home/vercel-sandbox vercel-sandbox\n');
    const override = await sandbox.runCommand({ cmd: 'sh', args: ['-c', 'echo $SANDBOX_WIDE'], env: { SANDBOX_WIDE: 'mine' } });
    expect(await override.stdout()).toBe('mine\n');
  });

  it('runs with sudo as root, and sudo itself works for the default user', async () => {
    const rooted = await sandbox.runCommand({ cmd: 'sh', args: ['-c', 'echo $USER $HOME'], sudo: true });
    expect(await rooted.stdout()).toBe('root /root\n');
    const viaSudo = await sandbox.runCommand('sudo', ['-n', 'true']);
    expect(viaSudo.exitCode).toBe(0);
  });

  it('has the Node.js and Python runtimes of the default image', async () => {
    const node = await sandbox.runCommand('node', ['-e', 'console.log(typeof fetch)']);
    expect(await node.stdout()).toBe('function\n');
    const python = await sandbox.runCommand('python3', ['-c', 'print(6 * 7)']);
    expect(await python.stdout()).toBe('42\n');
    expect((await sandbox.runCommand('npm', ['--version'])).exitCode).toBe(0);
    expect((await sandbox.runCommand('git', ['--version'])).exitCode).toBe(0);
  });

  it('answers a missing program with exit code 127 and a missing cwd with 1, both on stderr', async () => {
    const missing = await sandbox.runCommand('no-such-program-here', ['x']);
    expect(missing.exitCode).toBe(127);
    expect(await missing.stderr()).toBe('no-such-program-here: command not found\n');
    const noDir = await sandbox.runCommand({ cmd: 'true', cwd: '/no/such/dir' });
    expect(noDir.exitCode).toBe(1);
    expect(await noDir.stderr()).toBe('cwd /no/such/dir: No such file or directory\n');
  });

  it('streams a waiting command to the stdout and stderr writables given', async () => {
    const seen: string[] = [];
    const sink = (label: string) =>
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          seen.push(`${label}:${chunk.toString()}`);
          done();
        },
      });
    const result = await sandbox.runCommand({
      cmd: 'sh',
      args: ['-c', 'echo one; echo two >&2'],
      stdout: sink('out'),
      stderr: sink('err'),
    });
    expect(result.exitCode).toBe(0);
    expect(seen.sort()).toEqual(['err:two\n', 'out:one\n']);
  });

  it('runs detached: logs stream while it runs, wait gives the exit code', async () => {
    const command = await sandbox.runCommand({
      cmd: 'sh',
      args: ['-c', 'for i in 1 2 3; do echo "line $i"; sleep 0.05; done; echo bad >&2; exit 4'],
      detached: true,
    });
    expect(command.exitCode).toBeNull();
    expect(command.cmdId).toMatch(/^cmd_/);
    const lines: Array<{ stream: string; data: string }> = [];
    for await (const log of command.logs()) lines.push({ stream: log.stream, data: log.data });
    expect(
      lines
        .filter((line) => line.stream === 'stdout')
        .map((line) => line.data)
        .join(''),
    ).toBe('line 1\nline 2\nline 3\n');
    expect(
      lines
        .filter((line) => line.stream === 'stderr')
        .map((line) => line.data)
        .join(''),
    ).toBe('bad\n');
    const done = await command.wait();
    expect(done.exitCode).toBe(4);
    expect(typeof done.durationMs).toBe('number');
  });

  it('gets a detached command by id, and its output after it finished', async () => {
    const command = await sandbox.runCommand({ cmd: 'sh', args: ['-c', 'echo later'], detached: true });
    const again = await sandbox.getCommand(command.cmdId);
    expect(again.cmdId).toBe(command.cmdId);
    const done = await again.wait();
    expect(done.exitCode).toBe(0);
    expect(await done.stdout()).toBe('later\n');
  });

  it('replays the logs from the first line to every reader, as Vercel keeps them', async () => {
    const command = await sandbox.runCommand({ cmd: 'sh', args: ['-c', 'echo first; echo second >&2; echo third'], detached: true });
    const read = async () => {
      const streams = { stdout: '', stderr: '' };
      for await (const log of command.logs()) streams[log.stream] += log.data;
      return streams;
    };
    const expected = { stdout: 'first\nthird\n', stderr: 'second\n' };
    expect(await read()).toEqual(expected);
    expect(await read()).toEqual(expected);
    const done = await command.wait();
    expect(await done.stdout()).toBe('first\nthird\n');
    expect(await done.stderr()).toBe('second\n');
  });

  it('keeps the output of a detached command piped to a writable for a later stdout()', async () => {
    const piped: string[] = [];
    const command = await sandbox.runCommand({
      cmd: 'sh',
      args: ['-c', 'echo piped-and-kept'],
      detached: true,
      stdout: new Writable({
        write(chunk: Buffer, _encoding, done) {
          piped.push(chunk.toString());
          done();
        },
      }),
    });
    const done = await command.wait();
    expect(await done.stdout()).toBe('piped-and-kept\n');
    expect(piped.join('')).toBe('piped-and-kept\n');
  });

  it('kills a detached command: SIGTERM and SIGKILL give 128 + the signal number', async () => {
    const term = await sandbox.runCommand({ cmd: 'sleep', args: ['60'], detached: true });
    await term.kill('SIGTERM');
    expect((await term.wait()).exitCode).toBe(143);
    const kill = await sandbox.runCommand({ cmd: 'sleep', args: ['60'], detached: true });
    await kill.kill('SIGKILL');
    expect((await kill.wait()).exitCode).toBe(137);
  });

  it('kills a command that outlives its timeoutMs', async () => {
    const result = await sandbox.runCommand('sleep', ['60'], { timeoutMs: 300 });
    expect(result.exitCode).toBe(137);
  });

  it('carries output of many chunks whole, in order', async () => {
    const result = await sandbox.runCommand('sh', ['-c', 'seq 1 200000']);
    const text = await result.stdout();
    expect(text.length).toBe(1_288_895);
    expect(text.endsWith('199999\n200000\n')).toBe(true);
  });

  it('aborts a waiting command from its signal', async () => {
    const controller = new AbortController();
    const call = sandbox.runCommand({ cmd: 'sleep', args: ['60'], signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop waiting')), 200);
    await expect(call).rejects.toThrow('stop waiting');
  });
});
