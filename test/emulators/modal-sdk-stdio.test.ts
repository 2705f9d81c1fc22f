/**
 * The emulator's entrypoint stdio and PTY execs, driven by code written straight against the
 * `modal` SDK (no sandport adapter): `sb.stdout`, `sb.stderr`, `sb.stdin`, `sb.wait()` and
 * `sb.poll()` exit codes, and `sb.exec(..., { pty: true })`.
 */
import { ModalClient, type App, type Image, type Sandbox } from 'modal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModalEmulator, type ModalEmulator } from './modal/index.js';

let emulator: ModalEmulator;
let client: ModalClient;
let app: App;
let image: Image;
const sandboxes: Sandbox[] = [];

async function create(command: string[]): Promise<Sandbox> {
  const sandbox = await client.sandboxes.create(app, image, { command, timeoutMs: 120_000 });
  sandboxes.push(sandbox);
  return sandbox;
}

describe('modal emulator: entrypoint stdio and PTY through the real SDK', () => {
  beforeAll(async () => {
    emulator = await startModalEmulator();
    // The SDK reads its server URL from the environment when a client is made.
    process.env.MODAL_SERVER_URL = emulator.url;
    client = new ModalClient({ tokenId: 'ak-stdio', tokenSecret: 'as-stdio', logLevel: 'error' });
    app = await client.apps.fromName('sdk-stdio', { createIfMissing: true });
    image = client.images.fromRegistry('debian:bookworm-slim');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    client?.close();
    await emulator?.close();
  }, 120_000);

  it('sb.stdout and sb.stderr read the entrypoint’s output apart; wait() and poll() report its exit code', async () => {
    const sandbox = await create(['/bin/sh', '-c', 'echo to-out; echo to-err >&2; echo more-out; exit 4']);
    expect(await sandbox.stdout.readText()).toBe('to-out\nmore-out\n');
    expect(await sandbox.stderr.readText()).toBe('to-err\n');
    expect(await sandbox.wait()).toBe(4);
    expect(await sandbox.poll()).toBe(4);
  });

  it('output stays on the server: read again, and by a second client, from the start', async () => {
    const sandbox = await create(['/bin/sh', '-c', 'for i in 1 2 3; do echo "line $i"; done; read _']);
    const firstRead = sandbox.stdout.getReader();
    const lines: string[] = [];
    while (lines.join('').split('\n').length < 4) lines.push(((await firstRead.read()).value as string | undefined) ?? '');
    expect(lines.join('')).toBe('line 1\nline 2\nline 3\n');
    await firstRead.cancel();
    const other = new ModalClient({ tokenId: 'ak-stdio-2', tokenSecret: 'as-stdio-2', logLevel: 'error' });
    try {
      const found = await other.sandboxes.fromId(sandbox.sandboxId);
      const reading = found.stdout.readText();
      await found.stdin.writeText('done\n');
      expect(await reading).toBe('line 1\nline 2\nline 3\n');
      expect(await found.wait()).toBe(0);
    } finally {
      other.close();
    }
  });

  it('sb.stdin feeds the entrypoint; its exit code comes from what it read', async () => {
    const sandbox = await create(['/bin/sh', '-c', 'read code; echo "exiting with $code"; exit "$code"']);
    expect(await sandbox.poll()).toBeNull();
    await sandbox.stdin.writeText('7\n');
    expect(await sandbox.wait()).toBe(7);
    expect(await sandbox.poll()).toBe(7);
    expect(await sandbox.stdout.readText()).toBe('exiting with 7\n');
  });

  it('closing sb.stdin is EOF: cat echoes its input in order and exits 0', async () => {
    const sandbox = await create(['cat']);
    await sandbox.stdin.writeText('one\n');
    await sandbox.stdin.writeBytes(new TextEncoder().encode('two\n'));
    await sandbox.stdin.close();
    expect(await sandbox.stdout.readText()).toBe('one\ntwo\n');
    expect(await sandbox.wait()).toBe(0);
  });

  it('a sandbox without a command has empty entrypoint output, which ends with the sandbox', async () => {
    const sandbox = await client.sandboxes.create(app, image, { timeoutMs: 120_000 });
    sandboxes.push(sandbox);
    const text = sandbox.stdout.readText();
    await sandbox.terminate();
    expect(await text).toBe('');
    expect(await sandbox.wait()).toBe(137);
  });

  it('exec with pty: true runs on a terminal of 80x24 with TERM=xterm-256color, stderr merged into stdout', async () => {
    const sandbox = await create(['sleep', '100000']);
    const tty = await sandbox.exec(['tty'], { pty: true });
    expect(await tty.stdout.readText()).toMatch(/^\/dev\/pts\/\d+\r\n$/);
    expect(await tty.wait()).toBe(0);
    const size = await sandbox.exec(['stty', 'size'], { pty: true });
    expect(await size.stdout.readText()).toBe('24 80\r\n');
    const term = await sandbox.exec(['/bin/sh', '-c', 'echo "$TERM"; echo to-err >&2'], { pty: true });
    const [out, err] = await Promise.all([term.stdout.readText(), term.stderr.readText()]);
    expect(out).toBe('xterm-256color\r\nto-err\r\n');
    expect(err).toBe('');
    expect(await term.wait()).toBe(0);
  });

  it('the stdin of a pty exec is the terminal: input is echoed, Ctrl-D ends cat', async () => {
    const sandbox = await create(['sleep', '100000']);
    const cat = await sandbox.exec(['cat'], { pty: true });
    await cat.stdin.writeText('hello\n');
    await cat.stdin.writeText('\x04');
    // The terminal echoes the line, then cat prints it back.
    expect(await cat.stdout.readText()).toBe('hello\r\nhello\r\n');
    expect(await cat.wait()).toBe(0);
  });
});
