import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { PtySize } from '../spec/options.js';
import type { SandboxProcess } from '../spec/sandbox.js';
import { readText } from '../streams/index.js';
import { eventually, sandboxProcesses, type SuiteContext } from './context.js';

/** How long a terminal read waits for its pattern before the test fails with what it saw. */
const readDeadlineMs = 60_000;

/**
 * Reads a terminal's output as text until a pattern shows up. One read stays pending across
 * calls, so that a deadline never loses a chunk; the text seen so far is kept for the next
 * pattern and for the failure message.
 */
class TerminalReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']> | undefined;
  private ended = false;
  /** Everything read so far. */
  text = '';

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  /** Resolves with the first match of `pattern` in the text read from the start; throws at the deadline or the end. */
  async until(pattern: RegExp, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + readDeadlineMs;
    for (;;) {
      const match = this.text.match(pattern);
      if (match) return match;
      if (this.ended) throw new Error(`the terminal closed before ${what}; it printed ${JSON.stringify(this.text)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${readDeadlineMs} ms; the terminal printed ${JSON.stringify(this.text)}`);
      await this.readOnce(left);
    }
  }

  /** Reads to the end of the stream and returns the whole text. */
  async rest(): Promise<string> {
    while (!this.ended) await this.readOnce(readDeadlineMs);
    return this.text;
  }

  /** Stops reading (the stream is cancelled), so that a killed process's output never holds it. */
  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private async readOnce(waitMs: number): Promise<void> {
    this.pending ??= this.reader.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), waitMs);
    });
    const result = await Promise.race([this.pending, timeout]).finally(() => clearTimeout(timer));
    if (result === 'timeout') return;
    this.pending = undefined;
    if (result.done) {
      this.ended = true;
      this.text += this.decoder.decode();
    } else {
      this.text += this.decoder.decode(result.value, { stream: true });
    }
  }
}

const encoder = new TextEncoder();

/** Writes text to the terminal's input, keeping the writer's lock only for the write. */
async function type(process: SandboxProcess, text: string): Promise<void> {
  const writer = process.stdin.getWriter();
  try {
    await writer.write(encoder.encode(text));
  } finally {
    writer.releaseLock();
  }
}

/** The size most tests ask for: not the 80x24 every terminal defaults to, so a size ignored shows. */
const size: PtySize = { cols: 101, rows: 37 };

/** A prompt no shell prints by itself, so reading it proves the shell is reading its input. */
const prompt = 'sp-prompt> ';

/**
 * PTY exec (`ExecOptions.pty`, `SandboxProcess.resize`): a terminal inside the sandbox, with the
 * shell's job control on it. Every test that needs a terminal is skipped when
 * `capabilities.exec.pty` is false; the input checks and the pipe process's missing `resize` run
 * everywhere. Reads wait for a pattern in the output (never a fixed time).
 */
export function ptyTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const unsupported = context.capabilities.exec.pty ? undefined : 'no terminals (exec.pty false)';
  describe('pty', () => {
    const sandbox = context.sharedSandbox();
    const started: SandboxProcess[] = [];
    /** Starts a command on a terminal, remembered so that a failing test still kills it. */
    const onTerminal = async (argv: readonly string[], options: { pty?: PtySize; env?: Record<string, string> } = {}) => {
      const process = await sandbox().exec(argv, { pty: options.pty ?? size, env: options.env });
      started.push(process);
      return { process, output: new TerminalReader(process.stdout) };
    };
    const stopAll = async () => {
      const all = started.splice(0);
      await Promise.all(all.map((process) => process.kill().catch(() => undefined)));
    };
    /** An interactive shell with a known prompt; `sh` is the only shell the suite's image must have. */
    const interactiveShell = async () => {
      const shell = await onTerminal(['/bin/sh', '-i'], { env: { PS1: prompt, ENV: '/dev/null' } });
      await shell.output.until(new RegExp(escapeRegExp(prompt)), 'the prompt');
      return shell;
    };
    const withCleanup = (body: () => Promise<void>) => async () => {
      try {
        await body();
      } finally {
        await stopAll();
      }
    };

    context.test(
      'pty.is-terminal',
      'stdin and stdout are a terminal ([ -t 0 ], [ -t 1 ], tty)',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['/bin/sh', '-c', '[ -t 0 ] && [ -t 1 ] && echo both-terminals; tty']);
        const text = await output.rest();
        expect(text).toMatch(/^both-terminals\r?$/m);
        expect(text).toMatch(/^\/dev\/\S+\r?$/m);
        expect(text).not.toMatch(/not a tty/);
        expect((await process.wait()).exitCode).toBe(0);
      }),
      unsupported,
    );

    context.test(
      'pty.size',
      'stty size prints the requested rows and cols',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['stty', 'size']);
        expect((await output.rest()).trim()).toBe(`${size.rows} ${size.cols}`);
        expect((await process.wait()).exitCode).toBe(0);
        const small = await onTerminal(['stty', 'size'], { pty: { cols: 1, rows: 1 } });
        expect((await small.output.rest()).trim()).toBe('1 1');
      }),
      unsupported,
    );

    context.test(
      'pty.term',
      'TERM is xterm-256color by default; env.TERM overrides it',
      withCleanup(async () => {
        const script = ['/bin/sh', '-c', 'printf "<%s>\\n" "$TERM"'];
        expect((await (await onTerminal(script)).output.rest()).trim()).toBe('<xterm-256color>');
        expect((await (await onTerminal(script, { env: { TERM: 'vt100' } })).output.rest()).trim()).toBe('<vt100>');
      }),
      unsupported,
    );

    context.test(
      'pty.resize',
      'resize changes the size and the command gets SIGWINCH',
      withCleanup(async () => {
        // `wait` returns when a trapped signal arrives, so the trap runs at once.
        const script = "trap 'stty size' WINCH; echo ready; while :; do sleep 1 & wait $!; done";
        const { process, output } = await onTerminal(['/bin/sh', '-c', script]);
        await output.until(/ready/, 'the ready line');
        expect(typeof process.resize).toBe('function');
        await process.resize!({ cols: 90, rows: 30 });
        await output.until(/^30 90\r?$/m, 'the new size printed by the WINCH trap');
        await process.resize!({ cols: 200, rows: 50 });
        await output.until(/^50 200\r?$/m, 'the second size');
        await process.kill();
        await process.wait();
      }),
      unsupported,
    );

    context.test(
      'pty.streaming',
      'output arrives before the command exits, with nothing written',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['/bin/sh', '-c', 'echo first-line; exec sleep 300']);
        await output.until(/^first-line\r?$/m, 'the first line');
        await process.kill();
        expect((await process.wait()).signal).toBe('SIGKILL');
      }),
      unsupported,
    );

    context.test(
      'pty.interactive',
      'an interactive sh is driven through stdin: a command runs, exit 3 is the exit code',
      withCleanup(async () => {
        const { process, output } = await interactiveShell();
        // The terminal echoes the input line; only the command's own output is the bare 42.
        await type(process, 'echo $((6 * 7))\n');
        await output.until(/^42\r?$/m, "the command's output");
        await type(process, 'exit 3\n');
        const [exit] = await Promise.all([process.wait(), output.rest()]);
        expect(exit.exitCode).toBe(3);
      }),
      unsupported,
    );

    context.test(
      'pty.interrupt',
      '\\x03 interrupts the foreground sleep of an interactive shell, which keeps running',
      withCleanup(async () => {
        const { process, output } = await interactiveShell();
        await type(process, 'sleep 3217\n');
        const running = await eventually(
          async () => (await sandboxProcesses(sandbox())).some((line) => /^sleep 3217\b/.test(line)),
          30_000,
        );
        expect(running, 'the sleep started').toBe(true);
        await type(process, '\x03');
        // The echoed input shows `after-$?`; only the shell's expansion has digits.
        await type(process, 'echo after-$?\n');
        const [, status] = await output.until(/after-(\d+)/, 'the shell back at its prompt');
        expect(Number(status), 'the exit status of the interrupted sleep').toBeGreaterThan(128);
        const gone = await eventually(async () => !(await sandboxProcesses(sandbox())).some((line) => /^sleep 3217\b/.test(line)), 30_000);
        expect(gone, 'the sleep ended').toBe(true);
        await type(process, 'exit 0\n');
        const [exit] = await Promise.all([process.wait(), output.rest()]);
        expect(exit.exitCode).toBe(0);
      }),
      unsupported,
    );

    context.test(
      'pty.stdin-eof',
      'closing stdin is end of input on the terminal: cat ends',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['cat']);
        const writer = process.stdin.getWriter();
        await writer.write(encoder.encode('typed line\n'));
        // Echo and cat's copy both show the line: two lines of it before the EOF.
        await output.until(/typed line\r?\n[\s\S]*typed line/, 'the echo and the copy');
        await writer.close();
        const [exit] = await Promise.all([process.wait(), output.rest()]);
        expect(exit.exitCode).toBe(0);
        expect(exit.signal).toBeUndefined();
      }),
      unsupported,
    );

    context.test(
      'pty.kill',
      'kill ends the command and reports the signal',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['/bin/sh', '-c', 'echo up; exec sleep 300']);
        await output.until(/up/, 'the start');
        await process.kill('SIGTERM');
        const exit = await process.wait();
        expect(exit.signal).toBe('SIGTERM');
        expect(exit.exitCode).toBe(143);
        await output.rest();
        const second = await onTerminal(['sleep', '300']);
        await second.process.kill();
        const killed = await second.process.wait();
        expect(killed.signal).toBe('SIGKILL');
        expect(killed.exitCode).toBe(137);
        await second.output.cancel();
      }),
      unsupported,
    );

    context.test(
      'pty.stderr-merged',
      'stderr is merged into stdout (with \\r\\n line ends); process.stderr is empty',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['/bin/sh', '-c', 'echo to-out; echo to-err >&2; echo out-again']);
        const [text, errors, exit] = await Promise.all([output.rest(), readText(process.stderr), process.wait()]);
        expect(text).toBe('to-out\r\nto-err\r\nout-again\r\n');
        expect(errors).toBe('');
        expect(exit.exitCode).toBe(0);
      }),
      unsupported,
    );

    context.test(
      'pty.run',
      'run(command, { pty }) buffers the merged output',
      async () => {
        const result = await sandbox().run('echo to-out; echo to-err >&2; stty size; exit 4', { pty: size });
        expect(result.stdout).toBe(`to-out\r\nto-err\r\n${size.rows} ${size.cols}\r\n`);
        expect(result.stderr).toBe('');
        expect(result.exitCode).toBe(4);
      },
      unsupported,
    );

    context.test(
      'pty.resize-after-exit',
      'resize after the command exited resolves',
      withCleanup(async () => {
        const { process, output } = await onTerminal(['true']);
        await output.rest();
        expect((await process.wait()).exitCode).toBe(0);
        await process.resize!({ cols: 10, rows: 10 });
        await process.resize!({ cols: 11, rows: 12 });
      }),
      unsupported,
    );

    context.test(
      'pty.start-errors',
      'on a terminal too, a missing cwd or program is SandboxInvalidArgumentError (cwd, command)',
      async () => {
        const cwd = await context.expectError(sandbox().exec(['true'], { pty: size, cwd: '/no/such/dir' }), SandboxInvalidArgumentError);
        expect(cwd.argument).toBe('cwd');
        const command = await context.expectError(
          sandbox().exec(['definitely-not-a-command-xyz'], { pty: size }),
          SandboxInvalidArgumentError,
        );
        expect(command.argument).toBe('command');
      },
      unsupported,
    );

    context.test('pty.bad-size', 'a size outside 1-65535 is SandboxInvalidArgumentError (argument pty)', async () => {
      for (const bad of [
        { cols: 0, rows: 24 },
        { cols: 80, rows: 65536 },
        { cols: 80.5, rows: 24 },
      ]) {
        const error = await context.expectError(sandbox().exec(['true'], { pty: bad }), SandboxInvalidArgumentError);
        expect(error.argument, error.message).toMatch(/^pty(\.|$)/);
      }
      if (!context.capabilities.exec.pty) return;
      const { process, output } = await onTerminal(['sleep', '300']);
      try {
        const error = await context.expectError(process.resize!({ cols: -1, rows: 24 }), SandboxInvalidArgumentError);
        expect(error.argument, error.message).toMatch(/^pty(\.|$)/);
      } finally {
        await stopAll();
        await output.cancel();
      }
    });

    context.test('pty.pipe-no-resize', 'a process started without pty has no resize', async () => {
      const process = await sandbox().exec(['true']);
      expect(process.resize).toBeUndefined();
      await Promise.all([readText(process.stdout), readText(process.stderr), process.wait()]);
    });
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
