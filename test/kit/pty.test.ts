import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { killMarkedTreeArgv, parseStartLine, readStartMarker, wrapArgv } from '../../src/kit/exec-wrapper.js';
import { checkPtySize, defaultPtyTerm, ptyEnvironment, ptyToolsExit, resizeArgv, shellQuote, wrapPtyArgv } from '../../src/kit/pty.js';
import { SandboxInvalidArgumentError } from '../../src/errors/index.js';
import { fromNodeReadable, readText } from '../../src/streams/index.js';

const hostile = [
  'with space',
  "single'quote",
  "''",
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
  '\r',
  ';exit 9',
];

/**
 * Runs an argv with pipes on this host, like an adapter runs it in a sandbox (the kit's argv is
 * plain sh; only `script`, `stty` and `tty` are needed).
 */
function runPiped(argv: readonly string[], env: Record<string, string>) {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    exit,
    stdout: fromNodeReadable(child.stdout as Readable),
    stderr: readText(fromNodeReadable(child.stderr as Readable)),
  };
}

const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('kit pty: pure parts', () => {
  it('shellQuote keeps every argument byte for byte through sh', async () => {
    const line = `for a in ${hostile.map(shellQuote).join(' ')}; do printf '<%s>\\n' "$a"; done`;
    const run = runPiped(['/bin/sh', '-c', line], baseEnv);
    expect(await readText(run.stdout)).toBe(hostile.map((argument) => `<${argument}>\n`).join(''));
  });

  it('wrapPtyArgv puts the exec wrapper, in pty mode, on the terminal', () => {
    const argv = wrapPtyArgv('id9', ['echo', "it's"], { size: { cols: 3, rows: 4 }, cwd: '/w', reportFd: 3 });
    expect(argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(argv[3]).toBe('sandport-pty');
    expect(argv[4]).toBe('id9');
    const onTerminal = argv[5]!;
    expect(onTerminal).toContain('stty rows 4 cols 3');
    const wrapped = wrapArgv('id9', ['echo', "it's"], { cwd: '/w', reportFd: 3, pty: true });
    expect(onTerminal.endsWith(`exec ${wrapped.map(shellQuote).join(' ')}`)).toBe(true);
    expect(wrapped.slice(3)).toEqual(['sandport-exec', 'id9', '/w', '3', 'pty', 'echo', "it's"]);
  });

  it('resizeArgv is stty -F on the terminal', () => {
    expect(resizeArgv('/dev/pts/7', { cols: 120, rows: 40 })).toEqual(['stty', '-F', '/dev/pts/7', 'rows', '40', 'cols', '120']);
  });

  it('ptyEnvironment defaults TERM and keeps the caller’s', () => {
    expect(ptyEnvironment()).toEqual({ TERM: defaultPtyTerm });
    expect(ptyEnvironment({ TERM: 'vt100', A: 'b' })).toEqual({ TERM: 'vt100', A: 'b' });
  });

  it('checkPtySize names the field of a bad size', () => {
    expect(checkPtySize({ cols: 1, rows: 65535 })).toEqual({ cols: 1, rows: 65535 });
    for (const [bad, argument] of [
      [{ cols: 0, rows: 1 }, 'pty.cols'],
      [{ cols: 1, rows: 1.5 }, 'pty.rows'],
      [{ cols: 1 }, 'pty.rows'],
      [{ cols: 1, rows: 1, x: 1 }, 'pty'],
      [null, 'pty'],
      ['80x24', 'pty'],
    ] as const) {
      let thrown: unknown;
      try {
        checkPtySize(bad, 'test');
      } catch (error) {
        thrown = error;
      }
      expect(SandboxInvalidArgumentError.isInstance(thrown), JSON.stringify(bad)).toBe(true);
      expect((thrown as SandboxInvalidArgumentError).argument).toBe(argument);
    }
  });

  it('parseStartLine reads the terminal path and a terminal line end', () => {
    const line = (text: string) => new TextEncoder().encode(text);
    expect(parseStartLine(line('\0SPX:ok'))).toEqual({ report: 'ok' });
    expect(parseStartLine(line('\0SPX:ok:/dev/pts/12\r'))).toEqual({ report: 'ok', ptyPath: '/dev/pts/12' });
    expect(parseStartLine(line('\0SPX:ok:not a tty'))).toEqual({ report: 'ok' });
    expect(parseStartLine(line('\0SPX:cwd\r'))).toEqual({ report: 'cwd' });
    expect(parseStartLine(line('\0SPX:command'))).toEqual({ report: 'command' });
    expect(parseStartLine(line('\0SPX:okay'))).toEqual({ report: 'none' });
  });
});

// util-linux `script` runs here as it would in a sandbox: these tests measure what the wrapper
// promises (report, size, TERM, arguments, exit codes, EOF), over plain pipes.
describe('kit pty: the wrapper under util-linux script', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'sandport-pty-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const size = { cols: 101, rows: 37 };

  it('reports ok with the terminal, sized, with TERM, and passes every argument byte for byte', async () => {
    const out = join(scratch, 'args');
    const script = 'stty size; echo "$TERM"; [ -t 0 ] && [ -t 1 ] && echo on-terminal; for a; do printf "<%s>\\n" "$a"; done > "$OUT"';
    const run = runPiped(
      wrapPtyArgv('id1', ['/bin/sh', '-c', script, 'sh', ...hostile], { size }),
      ptyEnvironment({ ...baseEnv, OUT: out }),
    );
    const { report, ptyPath, stdout } = await readStartMarker(run.stdout);
    expect(report).toBe('ok');
    expect(ptyPath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(await readText(stdout)).toBe(`37 101\r\n${defaultPtyTerm}\r\non-terminal\r\n`);
    expect(await run.stderr).toBe('');
    expect((await run.exit).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(hostile.map((argument) => `<${argument}>\n`).join(''));
  });

  it('passes the exit code through, and reports a bad cwd or command like the pipe wrapper', async () => {
    const exit = runPiped(wrapPtyArgv('id2', ['/bin/sh', '-c', 'exit 42'], { size }), baseEnv);
    expect((await readStartMarker(exit.stdout)).report).toBe('ok');
    expect((await exit.exit).code).toBe(42);
    const cwd = runPiped(wrapPtyArgv('id3', ['true'], { size, cwd: join(scratch, 'missing') }), baseEnv);
    expect((await readStartMarker(cwd.stdout)).report).toBe('cwd');
    expect((await cwd.exit).code).toBe(126);
    const command = runPiped(wrapPtyArgv('id4', ['no-such-program-xyz'], { size }), baseEnv);
    expect((await readStartMarker(command.stdout)).report).toBe('command');
    expect((await command.exit).code).toBe(127);
  });

  it('reports on another fd through script, and keeps SHELL for the command', async () => {
    const child = spawn(
      '/bin/sh',
      ['-c', 'exec "$@" 3>&1 1>/dev/null', 'sh', ...wrapPtyArgv('id5', ['/bin/sh', '-c', 'echo "$SHELL" > "$OUT"'], { size, reportFd: 3 })],
      { env: { ...baseEnv, SHELL: '/bin/false-shell', OUT: join(scratch, 'shell') }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    child.stdin.end();
    const { report, ptyPath } = await readStartMarker(fromNodeReadable(child.stdout as Readable));
    expect(report).toBe('ok');
    expect(ptyPath).toMatch(/^\/dev\/pts\/\d+$/);
    await new Promise((resolve) => child.once('exit', resolve));
    expect(readFileSync(join(scratch, 'shell'), 'utf8')).toBe('/bin/false-shell\n');
  });

  it('stdin EOF is one end-of-file on the terminal: cat ends', async () => {
    const run = runPiped(wrapPtyArgv('id6', ['cat'], { size }), baseEnv);
    const { stdout } = await readStartMarker(run.stdout);
    // Only after the report: input written earlier is echoed by the terminal ahead of it.
    run.child.stdin.end('line one\n');
    // The terminal's echo, then cat's copy.
    expect(await readText(stdout)).toBe('line one\r\nline one\r\n');
    expect((await run.exit).code).toBe(0);
  });

  it('a signal inside the terminal is 128+n; a signal to the outer shell ends it by that signal', async () => {
    const inside = runPiped(wrapPtyArgv('id7', ['/bin/sh', '-c', 'kill -TERM $$'], { size }), baseEnv);
    await readStartMarker(inside.stdout);
    expect(await inside.exit).toEqual({ code: 143, signal: null });
    const execId = `pty-test-${process.pid}-${Date.now()}`;
    const outer = runPiped(wrapPtyArgv(execId, ['/bin/sh', '-c', 'echo up; exec sleep 300'], { size }), baseEnv);
    const { stdout } = await readStartMarker(outer.stdout);
    const reader = stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('up');
    outer.child.kill('SIGTERM');
    expect(await outer.exit).toEqual({ code: null, signal: 'SIGTERM' });
    // The rest of the tree (script, the sleep) carries this exec's marker: the tree killer ends it.
    const [killer, ...killerArgs] = killMarkedTreeArgv(execId, 'SIGKILL');
    await new Promise<void>((resolve) => spawn(killer!, killerArgs, { stdio: 'ignore' }).once('exit', () => resolve()));
    // stdout ends once script, its last holder, is gone.
    while (!(await reader.read()).done);
  });

  it('without script, stty or tty in the image: exit 125 and a message naming the tool, no report', async () => {
    const run = runPiped(wrapPtyArgv('id9', ['true'], { size }), { PATH: join(scratch, 'empty-path') });
    expect((await readStartMarker(run.stdout)).report).toBe('none');
    expect((await run.exit).code).toBe(ptyToolsExit);
    expect(await run.stderr).toMatch(/no script, needed to run a command on a terminal/);
  });
});
