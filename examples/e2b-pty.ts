/**
 * A PTY shell: an interactive shell on a terminal, driven by a script as a terminal app (xterm.js
 * in a browser, say) would drive E2B's `sandbox.pty`: it types commands, reads the output back,
 * keeps the shell's state between commands, resizes the window and interrupts a command with Ctrl-C.
 *   E2B_API_KEY=… npx tsx examples/e2b-pty.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

await using sandbox = await provider.create();
const prompt = 'sandbox$ ';
// The prompt is set on the command line, after any login profile ran: E2B starts every command
// through a login shell whose profile sets a PS1 of its own. ENV=/dev/null: no rc file either.
const shell = await sandbox.exec(['env', `PS1=${prompt}`, 'ENV=/dev/null', '/bin/sh', '-i'], { pty: { cols: 80, rows: 24 } });

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const output = shell.stdout.getReader();
const input = shell.stdin.getWriter();
let screen = '';

/** Reads the terminal until `text` shows up, and returns what came before it (`text` is consumed). */
async function readUntil(text: string): Promise<string> {
  for (;;) {
    const at = screen.indexOf(text);
    if (at >= 0) {
      const before = screen.slice(0, at);
      screen = screen.slice(at + text.length);
      return before;
    }
    const next = await output.read();
    if (next.done) throw new Error(`the terminal closed before ${JSON.stringify(text)}; it printed ${JSON.stringify(screen)}`);
    screen += decoder.decode(next.value, { stream: true });
  }
}

/** Types a command line and returns its output (the terminal echoes the line first: that part is dropped). */
async function type(line: string): Promise<string> {
  await input.write(encoder.encode(`${line}\n`));
  await readUntil(`${line}\r\n`);
  return (await readUntil(prompt)).trim();
}

await readUntil(prompt);
console.log(`on a terminal: ${(await type('test -t 0 && echo yes')) === 'yes'}, size ${await type('stty size')}`);
// One shell for the whole session: a directory or variable set by one command holds for the next.
await type('mkdir -p /tmp/project && cd /tmp/project && GREETING=hello');
console.log(`state kept: ${await type('echo "$GREETING from $(pwd)"')}`);

await shell.resize?.({ cols: 132, rows: 43 });
console.log(`after resize: ${await type('stty size')}`);

// Ctrl-C reaches the foreground job through the terminal. The job says when it runs (typing
// ahead of it would interrupt the shell instead).
const job = "sh -c 'echo working; exec sleep 600'";
await input.write(encoder.encode(`${job}\n`));
await readUntil(`${job}\r\n`);
await readUntil('working\r\n');
await input.write(encoder.encode('\x03'));
await readUntil(prompt);
console.log(`interrupted: the job ended with ${await type('echo $?')}`);

await input.write(encoder.encode('exit 0\n'));
console.log(`shell exited ${(await shell.wait()).exitCode}`);
