/**
 * The emulator's envd process service as a user of the real `e2b` SDK sees it, through the SDK's
 * own calls (no sandport adapter): `commands.run` / `list` / `connect` / `kill` / `sendStdin` /
 * `closeStdin` and `pty.create` / `sendInput` / `resize` / `kill`, their results and error
 * classes; then a few wire facts the SDK cannot reach (keepalives at a short interval, tags, the
 * client stream it never calls), spoken as raw Connect JSON.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  AuthenticationError,
  CommandExitError,
  InvalidArgumentError,
  NotFoundError,
  Sandbox,
  SandboxNotFoundError,
  TimeoutError,
} from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir } from './e2b/e2b-templates.js';

const baseBuilt = existsSync(join(e2bImagesDir(), 'base', '.sandport-complete')) && process.getuid?.() === 0;
const needsBase = baseBuilt ? '' : ' (skipped: needs root and the base rootfs of scripts/build-e2b-images.sh)';

let emulator: E2bEmulator;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
let sandbox: Sandbox;

beforeAll(async () => {
  emulator = await startE2bEmulator();
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
  sandbox = await Sandbox.create('base', { ...options, timeoutMs: 300_000 });
});

afterAll(async () => {
  await sandbox?.kill().catch(() => undefined);
  await emulator?.close();
});

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

/** Polls until `check` holds (each poll is a real call; no timing is asserted). */
async function eventually<T>(probe: () => Promise<T>, check: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const value = await probe();
    if (check(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`never saw ${what}`);
}

/** A full garbage collection, so that only memory still referenced is counted. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

const running = async (pid: number) => (await sandbox.commands.list()).some((process) => process.pid === pid);

describe('commands.run', () => {
  it('returns stdout and stderr apart, and streams them to the callbacks', async () => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const result = await sandbox.commands.run('echo hi; echo oops >&2; printf "ünï\\n"', {
      onStdout: (data) => void stdout.push(data),
      onStderr: (data) => void stderr.push(data),
    });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'hi\nünï\n', stderr: 'oops\n' });
    expect(result.error).toBeUndefined();
    expect(stdout.join('')).toBe('hi\nünï\n');
    expect(stderr.join('')).toBe('oops\n');
  });

  it('throws CommandExitError on a non-zero exit, with the exit code, output and Go-style status', async () => {
    const error = await failure(sandbox.commands.run('echo partial; echo bad >&2; exit 3'));
    expect(error).toBeInstanceOf(CommandExitError);
    const exit = error as CommandExitError;
    expect(exit.exitCode).toBe(3);
    expect(exit.error).toBe('exit status 3');
    expect(exit.stdout).toBe('partial\n');
    expect(exit.stderr).toBe('bad\n');
  });

  it('reports a command killed by a signal as envd does: exit code -1 and "signal: ..."', async () => {
    const error = await failure(sandbox.commands.run('kill -TERM $$'));
    expect(error).toBeInstanceOf(CommandExitError);
    expect((error as CommandExitError).exitCode).toBe(-1);
    expect((error as CommandExitError).error).toBe('signal: terminated');
  });

  it('runs through bash -l -c with the request envs, cwd and an empty stdin unless asked', async () => {
    const result = await sandbox.commands.run('echo "$0 $FOO $-"; pwd; cat', { envs: { FOO: 'bar baz' }, cwd: '/tmp' });
    const [first, cwd] = result.stdout.split('\n');
    expect(first).toMatch(/^\/bin\/bash bar baz /);
    expect(cwd).toBe('/tmp');
  });

  it('reports the pid the command has inside the sandbox', async () => {
    const handle = await sandbox.commands.run('echo $$', { background: true });
    const result = await handle.wait();
    expect(result.stdout.trim()).toBe(String(handle.pid));
  });

  it('returns when the command exits even if a background child keeps its output open', async () => {
    const result = await sandbox.commands.run('sleep 60 & echo started');
    expect(result.stdout).toBe('started\n');
  });

  it('keeps a missing working directory an InvalidArgumentError naming it', async () => {
    const error = await failure(sandbox.commands.run('true', { cwd: '/no/such/dir' }));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toContain("cwd '/no/such/dir' does not exist");
  });

  it('refuses a user the sandbox does not have with AuthenticationError', async () => {
    const error = await failure(sandbox.commands.run('true', { user: 'nobody-here' }));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.message).toContain("invalid username: 'nobody-here'");
  });

  it.skipIf(!baseBuilt)(`runs as the default user \`user\` (home /home/user) or as root when asked${needsBase}`, async () => {
    const asUser = await sandbox.commands.run('echo "$HOME $USER $LOGNAME"; pwd');
    expect(asUser.stdout).toBe('/home/user user user\n/home/user\n');
    const relative = await sandbox.commands.run('mkdir -p work && cd work && pwd && cd ~ && pwd');
    expect(relative.stdout).toBe('/home/user/work\n/home/user\n');
    expect((await sandbox.commands.run('pwd', { cwd: 'work' })).stdout).toBe('/home/user/work\n');
    const asRoot = await sandbox.commands.run('echo "$HOME $USER"; pwd', { user: 'root' });
    expect(asRoot.stdout).toBe('/root root\n/root\n');
  });

  it('leaves the 60 s default timeout to the SDK: a command that outlives its timeoutMs is a TimeoutError and envd kills it', async () => {
    const handle = await sandbox.commands.run('sleep 120', { background: true, timeoutMs: 1000 });
    const error = await failure(handle.wait());
    expect(error).toBeInstanceOf(TimeoutError);
    await eventually(
      () => running(handle.pid),
      (alive) => !alive,
      'the timed-out command gone from the list',
    );
  });
});

describe('background commands', () => {
  it('keep running when the client disconnects; list shows them; connect re-attaches to their output and end', async () => {
    const handle = await sandbox.commands.run('echo before; while [ ! -e /tmp/bg-go ]; do sleep 0.05; done; echo after; exit 4', {
      background: true,
      timeoutMs: 0,
    });
    await eventually(
      async () => handle.stdout,
      (stdout) => stdout === 'before\n',
      'the first line',
    );
    await handle.disconnect();
    const listed = (await sandbox.commands.list()).find((process) => process.pid === handle.pid);
    expect(listed).toMatchObject({ pid: handle.pid, cmd: '/bin/bash', args: ['-l', '-c', expect.stringContaining('bg-go')] });

    const seen: string[] = [];
    const again = await sandbox.commands.connect(handle.pid, { onStdout: (data) => void seen.push(data) });
    expect(again.pid).toBe(handle.pid);
    await sandbox.commands.run('touch /tmp/bg-go');
    const error = await failure(again.wait());
    expect(error).toBeInstanceOf(CommandExitError);
    expect((error as CommandExitError).exitCode).toBe(4);
    // Only what was printed after the connect: envd does not replay earlier output.
    expect((error as CommandExitError).stdout).toBe('after\n');
    expect(seen.join('')).toBe('after\n');
    expect(await running(handle.pid)).toBe(false);
  });

  it('take stdin when started with stdin: true, through sendStdin and the handle, until closeStdin', async () => {
    const handle = await sandbox.commands.run('cat; echo done', { background: true, stdin: true });
    await sandbox.commands.sendStdin(handle.pid, 'one\n');
    await handle.sendStdin(new TextEncoder().encode('two\n'));
    await sandbox.commands.closeStdin(handle.pid);
    const result = await handle.wait();
    expect(result.stdout).toBe('one\ntwo\ndone\n');
  });

  it('refuse stdin when it was not requested', async () => {
    const handle = await sandbox.commands.run('sleep 30', { background: true });
    const error = await failure(sandbox.commands.sendStdin(handle.pid, 'x'));
    expect(error.message).toContain('stdin');
    expect(await sandbox.commands.kill(handle.pid)).toBe(true);
  });

  it('are killed by commands.kill (SIGKILL to that pid): true, then false once gone', async () => {
    const handle = await sandbox.commands.run('sleep 120', { background: true });
    expect(await sandbox.commands.kill(handle.pid)).toBe(true);
    const error = await failure(handle.wait());
    expect(error).toBeInstanceOf(CommandExitError);
    expect((error as CommandExitError).exitCode).toBe(-1);
    expect((error as CommandExitError).error).toBe('signal: killed');
    expect(await running(handle.pid)).toBe(false);
    expect(await sandbox.commands.kill(handle.pid)).toBe(false);
  });

  it('name a missing pid NotFoundError for sendStdin, closeStdin and connect', async () => {
    for (const call of [
      sandbox.commands.sendStdin(999_999, 'x'),
      sandbox.commands.closeStdin(999_999),
      sandbox.commands.connect(999_999),
    ]) {
      const error = await failure(call);
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.message).toContain('process with pid 999999 not found');
    }
  });

  it('run to their end when nobody reads their output, without the emulator keeping it', async () => {
    const handle = await sandbox.commands.run('head -c 268435456 /dev/zero', { background: true, timeoutMs: 0 });
    await handle.disconnect();
    await eventually(
      () => running(handle.pid),
      (alive) => !alive,
      'the unread command finished',
    );
    // 256 MiB went by; what the emulator (in this process) still holds is bounded by its queues.
    // V8 frees collected buffers in the background: poll after each collection.
    await eventually(
      async () => {
        collectGarbage();
        return process.memoryUsage().arrayBuffers;
      },
      (bytes) => bytes < 64 * 1024 * 1024,
      'the output buffers released',
    );
  });
});

describe('pty', () => {
  it('creates a terminal of the asked size, takes input, resizes, and ends with the shell', async () => {
    let output = '';
    const terminal = await sandbox.pty.create({ cols: 80, rows: 24, onData: (data) => void (output += new TextDecoder().decode(data)) });
    const listed = (await sandbox.commands.list()).find((process) => process.pid === terminal.pid);
    expect(listed).toMatchObject({ cmd: '/bin/bash', args: ['-i', '-l'], envs: expect.objectContaining({ TERM: 'xterm-256color' }) });

    await sandbox.pty.sendInput(terminal.pid, new TextEncoder().encode('tty; stty size; echo "$TERM"\n'));
    await eventually(
      async () => output,
      (text) => /24 80\r\n/.test(text) && text.includes('xterm-256color'),
      'the first size',
    );
    expect(output).toMatch(/\/dev\/pts\/\d+/);

    await sandbox.pty.resize(terminal.pid, { cols: 100, rows: 30 });
    await sandbox.pty.sendInput(terminal.pid, new TextEncoder().encode('stty size; exit 0\n'));
    const result = await terminal.wait();
    expect(result.exitCode).toBe(0);
    expect(output).toMatch(/30 100\r\n/);
  });

  it('is killed by pty.kill', async () => {
    const terminal = await sandbox.pty.create({ cols: 40, rows: 10, onData: () => undefined });
    expect(await sandbox.pty.kill(terminal.pid)).toBe(true);
    const error = await failure(terminal.wait());
    expect(error).toBeInstanceOf(CommandExitError);
    expect((error as CommandExitError).error).toBe('signal: killed');
    expect(await sandbox.pty.kill(terminal.pid)).toBe(false);
  });

  it('refuses stdin calls on a terminal and terminal calls on pipes', async () => {
    const terminal = await sandbox.pty.create({ cols: 40, rows: 10, onData: () => undefined });
    expect((await failure(sandbox.commands.sendStdin(terminal.pid, 'x'))).message).toContain('terminal');
    const piped = await sandbox.commands.run('sleep 30', { background: true, stdin: true });
    expect((await failure(sandbox.pty.resize(piped.pid, { cols: 10, rows: 10 }))).message).toContain('no terminal');
    await sandbox.pty.kill(terminal.pid);
    await sandbox.commands.kill(piped.pid);
  });
});

describe('envd on the wire (raw Connect JSON)', () => {
  function headers(extra: Record<string, string> = {}): Record<string, string> {
    const token = (sandbox as unknown as { envdAccessToken?: string }).envdAccessToken;
    return { 'e2b-sandbox-id': sandbox.sandboxId, ...(token ? { 'x-access-token': token } : {}), ...extra };
  }

  function envelope(flags: number, message: unknown): Uint8Array {
    const json = Buffer.from(JSON.stringify(message));
    const head = Buffer.alloc(5);
    head.writeUInt8(flags, 0);
    head.writeUInt32BE(json.byteLength, 1);
    return Buffer.concat([head, json]);
  }

  /** A server-streaming call: its messages one by one, the end-of-stream message last. */
  async function* stream(
    method: string,
    message: unknown,
    extra: Record<string, string> = {},
  ): AsyncGenerator<{ end: boolean; json: any }> {
    const response = await fetch(`${emulator.sandboxUrl}/process.Process/${method}`, {
      method: 'POST',
      headers: headers({ 'content-type': 'application/connect+json', 'connect-protocol-version': '1', ...extra }),
      body: envelope(0, message),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/connect+json');
    const reader = response.body!.getReader();
    let buffered = Buffer.alloc(0);
    try {
      for (;;) {
        while (buffered.byteLength >= 5 && buffered.byteLength >= 5 + buffered.readUInt32BE(1)) {
          const length = buffered.readUInt32BE(1);
          const flags = buffered.readUInt8(0);
          yield { end: (flags & 2) !== 0, json: JSON.parse(buffered.subarray(5, 5 + length).toString()) };
          buffered = buffered.subarray(5 + length);
        }
        const next = await reader.read();
        if (next.done) return;
        buffered = Buffer.concat([buffered, next.value]);
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  it('sends keepalives at the Keepalive-Ping-Interval asked for while a command is silent', async () => {
    const events = stream(
      'Start',
      { process: { cmd: '/bin/sh', args: ['-c', 'while [ ! -e /tmp/ka-go ]; do sleep 0.1; done; printf x'] } },
      { 'keepalive-ping-interval': '1' },
    );
    const start = (await events.next()).value!;
    expect(start.json).toEqual({ event: { start: { pid: expect.any(Number) } } });
    expect((await events.next()).value!.json).toEqual({ event: { keepalive: {} } });
    await sandbox.commands.run('touch /tmp/ka-go');
    const rest: any[] = [];
    for await (const item of events) rest.push(item.json);
    const data = rest.filter((json) => json.event?.data);
    expect(data).toEqual([{ event: { data: { stdout: Buffer.from('x').toString('base64') } } }]);
    expect(rest.at(-2)).toEqual({ event: { end: { exited: true, status: 'exit status 0' } } });
    expect(rest.at(-1)).toEqual({});
  });

  it('finds a process by its tag for Connect and List', async () => {
    const started = stream('Start', {
      process: { cmd: '/bin/sh', args: ['-c', 'while [ ! -e /tmp/tag-go ]; do sleep 0.1; done'] },
      tag: 'web',
    });
    const pid = (await started.next()).value!.json.event.start.pid;
    const listed = await fetch(`${emulator.sandboxUrl}/process.Process/List`, {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json' }),
      body: '{}',
    }).then((response) => response.json() as Promise<{ processes: unknown[] }>);
    expect(listed.processes).toContainEqual({ config: { cmd: '/bin/sh', args: ['-c', expect.any(String)], envs: {} }, pid, tag: 'web' });
    const connected = stream('Connect', { process: { tag: 'web' } });
    expect((await connected.next()).value!.json).toEqual({ event: { start: { pid } } });
    await sandbox.commands.run('touch /tmp/tag-go');
    const ends: any[] = [];
    for await (const item of connected) if (item.json.event?.end) ends.push(item.json.event.end);
    expect(ends).toEqual([{ exited: true, status: 'exit status 0' }]);
    await started.return(undefined);
  });

  it('answers a bad request invalid_argument and StreamInput unimplemented, in the end-of-stream message', async () => {
    const bad = [];
    for await (const item of stream('Start', { process: {} })) bad.push(item);
    expect(bad).toEqual([{ end: true, json: { error: { code: 'invalid_argument', message: expect.stringContaining('cmd') } } }]);
    const input = [];
    for await (const item of stream('StreamInput', { start: { process: { pid: 1 } } })) input.push(item);
    expect(input).toEqual([{ end: true, json: { error: { code: 'unimplemented', message: expect.stringContaining('StreamInput') } } }]);
  });
});

describe('a sandbox that is gone', () => {
  it('makes commands.run a SandboxNotFoundError', async () => {
    const doomed = await Sandbox.create('base', { ...options, timeoutMs: 60_000 });
    await doomed.kill();
    const error = await failure(doomed.commands.run('true'));
    expect(error).toBeInstanceOf(SandboxNotFoundError);
  });
});
