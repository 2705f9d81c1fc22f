/**
 * Preview links and PTYs as a user of the real `@daytonaio/sdk` sees them: `getPreviewLink(port)`
 * reached with a plain `fetch` and WebSocket carrying the preview token (refused without it,
 * open for a public sandbox), `getSignedPreviewUrl` used as it is and revoked with
 * `expireSignedPreviewUrl`, and `process.createPty` / `connectPty` / `resizePtySession` /
 * `killPtySession` / `listPtySessions` through the daemon's PTY WebSocket.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Daytona, type Sandbox } from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { previewTokenHeader, startDaytonaEmulator, type DaytonaEmulator } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

// An HTTP server on 8080 answering its path, and a WebSocket echo server on 8765, Python stdlib only.
const servers = String.raw`
import base64, hashlib, http.server, socket, struct, threading
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('path=' + self.path + ' token=' + str(self.headers.get('x-daytona-preview-token'))).encode()
        self.send_response(200); self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
threading.Thread(target=http.server.ThreadingHTTPServer(('0.0.0.0', 8080), Answer).serve_forever, daemon=True).start()
def echo(conn):
    request = b''
    while b'\r\n\r\n' not in request: request += conn.recv(4096)
    key = [l.split(b': ', 1)[1] for l in request.split(b'\r\n') if l.lower().startswith(b'sec-websocket-key')][0].strip()
    accept = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    conn.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
    def exact(n):
        data = b''
        while len(data) < n: data += conn.recv(n - len(data))
        return data
    while True:
        first, second = exact(2)
        length = second & 127
        if length == 126: length = struct.unpack('>H', exact(2))[0]
        mask = exact(4); payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exact(length)))
        if first & 15 == 8: conn.close(); return
        reply = b'echo:' + payload
        conn.sendall(bytes([0x81, len(reply)]) + reply)
listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); listener.bind(('0.0.0.0', 8765)); listener.listen()
while True:
    conn, _ = listener.accept(); threading.Thread(target=echo, args=(conn,), daemon=True).start()
`;

let emulator: DaytonaEmulator;
let daytona: Daytona;
let sandbox: Sandbox;

async function untilServing(url: string, headers: Record<string, string>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const response = await fetch(url, { headers }).catch(() => undefined);
    if (response?.status === 200) return;
    await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} never answered`);
}

beforeAll(async () => {
  if (!imageBuilt) return;
  emulator = await startDaytonaEmulator();
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: emulator.apiKey, target: 'us' });
  sandbox = await daytona.create();
  await sandbox.fs.uploadFile(Buffer.from(servers), '/tmp/servers.py');
  await sandbox.process.createSession('servers');
  await sandbox.process.executeSessionCommand('servers', { command: 'python3 /tmp/servers.py', runAsync: true });
  const link = await sandbox.getPreviewLink(8080);
  await untilServing(link.url, { [previewTokenHeader]: link.token });
}, 120_000);

afterAll(async () => {
  await sandbox?.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
});

function echoOnce(url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => socket.send('ping'));
    socket.once('message', (data) => {
      resolve(data.toString());
      socket.close();
    });
    socket.once('unexpected-response', (_request, response) => reject(new Error(`refused with ${response.statusCode}`)));
    socket.once('error', reject);
  });
}

describe.skipIf(!imageBuilt)(`Daytona emulator: preview links through the SDK${needsImage}`, () => {
  it('getPreviewLink gives a URL a plain fetch reaches with the token header, which the server does not see', async () => {
    const link = await sandbox.getPreviewLink(8080);
    expect(link.sandboxId).toBe(sandbox.id);
    expect(link.url).toBe(`http://8080-${sandbox.id}.${emulator.previewDomain}`);
    const response = await fetch(`${link.url}/some/path?q=1`, { headers: { [previewTokenHeader]: link.token } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('path=/some/path?q=1 token=None');
  });

  it('without the token, or with a wrong one, the preview is a 401', async () => {
    const link = await sandbox.getPreviewLink(8080);
    expect((await fetch(link.url)).status).toBe(401);
    expect((await fetch(link.url, { headers: { [previewTokenHeader]: 'wrong' } })).status).toBe(401);
  });

  it('a WebSocket reaches the sandbox port through the preview link', async () => {
    const link = await sandbox.getPreviewLink(8765);
    const ws = link.url.replace(/^http/, 'ws');
    expect(await echoOnce(ws, { [previewTokenHeader]: link.token })).toBe('echo:ping');
    await expect(echoOnce(ws, {})).rejects.toThrow('refused with 401');
  });

  it('a signed preview URL works as it is, for its port only, until it is expired', async () => {
    const signed = await sandbox.getSignedPreviewUrl(8080, 120);
    expect(signed).toMatchObject({ sandboxId: sandbox.id, port: 8080, token: expect.any(String) });
    const response = await fetch(`${signed.url}/signed`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('path=/signed token=None');
    const wsSigned = await sandbox.getSignedPreviewUrl(8765);
    expect(await echoOnce(wsSigned.url.replace(/^http/, 'ws'), {})).toBe('echo:ping');
    const otherPort = signed.url.replace('8080-', '8765-');
    expect((await fetch(otherPort)).status).toBe(401);
    await sandbox.expireSignedPreviewUrl(8080, signed.token);
    expect((await fetch(signed.url)).status).toBe(401);
  });

  it('a port nothing listens on is a 502', async () => {
    const link = await sandbox.getPreviewLink(9999);
    expect((await fetch(link.url, { headers: { [previewTokenHeader]: link.token } })).status).toBe(502);
  });

  it('a public sandbox needs no token', async () => {
    const open = await daytona.create({ public: true });
    try {
      await open.fs.uploadFile(Buffer.from(servers), '/tmp/servers.py');
      await open.process.createSession('servers');
      await open.process.executeSessionCommand('servers', { command: 'python3 /tmp/servers.py', runAsync: true });
      const link = await open.getPreviewLink(8080);
      await untilServing(link.url, {});
      expect(await (await fetch(link.url)).text()).toBe('path=/ token=None');
    } finally {
      await open.delete();
    }
  });
});

describe.skipIf(!imageBuilt)(`Daytona emulator: PTY through the SDK${needsImage}`, () => {
  it('createPty runs a shell on a terminal: input in, output out, resize seen, exit code on wait', async () => {
    let output = '';
    const pty = await sandbox.process.createPty({
      id: 'term-one',
      cols: 100,
      rows: 30,
      envs: { PTY_VAR: 'from-envs' },
      onData: (data) => {
        output += new TextDecoder().decode(data);
      },
    });
    await pty.sendInput('echo "var=$PTY_VAR"; stty size; tty >/dev/null && echo is-a-tty\n');
    for (let attempt = 0; attempt < 100 && !output.includes('is-a-tty'); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(output).toContain('var=from-envs');
    expect(output).toContain('30 100');
    expect(output).toContain('is-a-tty');
    const info = await pty.resize(120, 40);
    expect(info).toMatchObject({ id: 'term-one', cols: 120, rows: 40, active: true });
    await pty.sendInput('stty size\n');
    for (let attempt = 0; attempt < 100 && !output.includes('40 120'); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(output).toContain('40 120');
    expect((await sandbox.process.listPtySessions()).map((session) => session.id)).toContain('term-one');
    await pty.sendInput('exit 7\n');
    const result = await pty.wait();
    expect(result.exitCode).toBe(7);
  });

  it('connectPty attaches to a terminal made earlier; killPtySession ends it', async () => {
    const first = await sandbox.process.createPty({ id: 'term-two', onData: () => undefined });
    await first.sendInput('export MARK=kept\n');
    await first.disconnect();
    let output = '';
    const again = await sandbox.process.connectPty('term-two', {
      onData: (data) => {
        output += new TextDecoder().decode(data);
      },
    });
    await again.sendInput('echo "mark=$MARK"\n');
    for (let attempt = 0; attempt < 100 && !output.includes('mark=kept'); attempt++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(output).toContain('mark=kept');
    expect((await sandbox.process.getPtySessionInfo('term-two')).active).toBe(true);
    await again.kill();
    await again.wait();
    expect((await sandbox.process.listPtySessions()).map((session) => session.id)).not.toContain('term-two');
  });
});
