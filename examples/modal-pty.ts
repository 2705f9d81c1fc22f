/**
 * A terminal: an interactive shell driven by a script. It types commands, reads the prompt and
 * the output back, interrupts a command with Ctrl-C and resizes the window, as a terminal app
 * (xterm.js in a browser, say) would.
 *   npx tsx examples/modal-pty.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });

await using sandbox = await provider.create();
const prompt = 'demo$ ';
// ENV=/dev/null: no rc file changes the prompt.
const shell = await sandbox.exec(['/bin/sh', '-i'], { pty: { cols: 100, rows: 30 }, env: { PS1: prompt, ENV: '/dev/null' } });

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const output = shell.stdout.getReader();
const input = shell.stdin.getWriter();
let screen = '';

/** Reads the terminal until `text` shows up, and returns what came before it (the prompt is consumed). */
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
async function run(line: string): Promise<string> {
  await input.write(encoder.encode(`${line}\n`));
  await readUntil(`${line}\r\n`);
  return (await readUntil(prompt)).trim();
}

await readUntil(prompt);
console.log(`terminal: ${await run('tty')}, TERM=${await run('echo $TERM')}`);
console.log(`size: ${await run('stty size')}`);

await shell.resize?.({ cols: 120, rows: 40 });
console.log(`after resize: ${await run('stty size')}`);

// Ctrl-C reaches the foreground job through the terminal, as in any shell. The job says when it
// runs (typing ahead of it would interrupt the shell instead).
const job = "sh -c 'echo sleeping; exec sleep 600'";
await input.write(encoder.encode(`${job}\n`));
await readUntil(`${job}\r\n`);
await readUntil('sleeping\r\n');
await input.write(encoder.encode('\x03'));
await readUntil(prompt);
console.log(`interrupted: sleep ended with ${await run('echo $?')}`);

await input.write(encoder.encode('exit 0\n'));
console.log(`shell exited ${(await shell.wait()).exitCode}`);
