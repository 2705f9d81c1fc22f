/**
 * The Kubernetes emulator's exec and port-forward WebSockets, through the real
 * `@kubernetes/client-node` 1.4 (`Exec`, `PortForward`) and through raw `ws` frames where the
 * wire itself is the point: v5 and v4 subprotocols, the empty first frame, stdin half-close
 * (`[255, 0]`), the status channel's exit codes, a missing program, TTY and resize, backpressure
 * on a reader that stops, a closed socket killing nothing, port-forward's v4 port-prefix framing
 * and its error channel, and upgrade failures answered with a Status body.
 */
import { Exec, PortForward, type KubeConfig, CoreV1Api } from '@kubernetes/client-node';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startKubernetesEmulator, type KubernetesEmulator } from './kubernetes/index.js';
import { isRunning, kubeConfigFor, podBody, waitForPod } from './kubernetes/k8s-test-client.js';

let emulator: KubernetesEmulator;
let config: KubeConfig;
const namespace = 'default';
const pod = 'exec-target';

beforeAll(async () => {
  emulator = await startKubernetesEmulator({ startDelayMs: 0 });
  config = kubeConfigFor(emulator.kubeconfigPath);
  const core = config.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({
    namespace,
    body: podBody(pod, {
      // The server reads the request line before it answers: one that answers at once closes with
      // the request unread, which makes the kernel reset the connection, and a reset can drop the
      // answer before the emulator reads it (a CI dry run saw exactly that).
      command: ['socat', 'TCP-LISTEN:8080,fork,reuseaddr', 'SYSTEM:read -r line; echo hello-from-8080'],
      container: { ports: [{ containerPort: 8080 }] },
    }),
  });
  await waitForPod(config, namespace, pod, isRunning);
}, 120_000);
afterAll(async () => emulator?.close(), 60_000);

function collector(): { stream: Writable; text(): string; bytes(): number } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({ write: (chunk: Buffer, _encoding, done) => (chunks.push(chunk), done()) }),
    text: () => Buffer.concat(chunks).toString('utf8'),
    bytes: () => chunks.reduce((total, chunk) => total + chunk.byteLength, 0),
  };
}

/** Runs a command through client-node's Exec; resolves with its output and the Status. */
async function clientExec(
  command: string[],
  stdinText?: Buffer | string,
): Promise<{ stdout: string; stderr: string; status: Record<string, unknown>; protocol: string }> {
  const stdout = collector();
  const stderr = collector();
  const stdin = stdinText === undefined ? null : new PassThrough();
  let socket: WebSocket | undefined;
  const status = await new Promise<Record<string, unknown>>((resolve, reject) => {
    new Exec(config)
      .exec(namespace, pod, 'main', command, stdout.stream, stderr.stream, stdin, false, (value) => resolve(value as never))
      .then((ws) => {
        socket = ws as unknown as WebSocket;
        stdin?.end(stdinText);
      }, reject);
  });
  return { stdout: stdout.text(), stderr: stderr.text(), status, protocol: socket?.protocol ?? '' };
}

interface RawSession {
  ws: WebSocket;
  frames: Buffer[];
  closed: Promise<void>;
}

async function headers(): Promise<Record<string, string>> {
  const options: { headers?: Record<string, string>; ca?: string | Buffer } = {};
  await config.applyToHTTPSOptions(options as never);
  return options.headers ?? {};
}

/** Opens a raw WebSocket to a pod subresource; resolves once open, or with the refused answer. */
async function rawSocket(path: string, protocols: string[]): Promise<RawSession | { status: number; body: string }> {
  const url = `${emulator.url.replace(/^https/, 'wss')}${path}`;
  const ws = new WebSocket(url, protocols, { headers: await headers(), ca: emulator.caCertificate });
  const frames: Buffer[] = [];
  ws.on('message', (data: Buffer) => frames.push(Buffer.from(data)));
  const closed = once(ws, 'close').then(() => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, frames, closed }));
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

function execPath(command: string[], flags: Record<string, boolean>): string {
  const query = new URLSearchParams();
  for (const part of command) query.append('command', part);
  for (const [name, value] of Object.entries(flags)) query.set(name, String(value));
  return `/api/v1/namespaces/${namespace}/pods/${pod}/exec?${query}`;
}

describe('exec through client-node', () => {
  it('negotiates v5 and reads a non-zero exit code from the status channel', async () => {
    const result = await clientExec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(result.protocol).toBe('v5.channel.k8s.io');
    expect(result.stdout).toBe('out\n');
    expect(result.stderr).toBe('err\n');
    expect(result.status).toMatchObject({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });

  it('reports Success for exit 0', async () => {
    const result = await clientExec(['true']);
    expect(result.status).toEqual({ metadata: {}, status: 'Success' });
  });

  it('delivers 4 MiB of stdin, closes it with the v5 close frame, and keeps the output after EOF', async () => {
    const input = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const result = await clientExec(['sh', '-c', 'wc -c; echo after-eof'], input);
    expect(result.stdout).toBe(`${input.byteLength}\nafter-eof\n`);
    expect(result.status.status).toBe('Success');
  });

  it('answers a missing program with an InternalError status, as containerd does', async () => {
    const result = await clientExec(['no-such-program-here']);
    expect(result.status).toMatchObject({ status: 'Failure', reason: 'InternalError', code: 500 });
    expect(String(result.status.message)).toContain('executable file not found in $PATH');
  });
});

describe('exec on the wire', () => {
  it('serves v4 when only v4 is offered, sends an empty stdout frame first and the status on channel 3, then closes 1000', async () => {
    const session = await rawSocket(execPath(['sh', '-c', 'printf hi; exit 7'], { stdout: true, stderr: true, stdin: false, tty: false }), [
      'v4.channel.k8s.io',
    ]);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    expect(session.ws.protocol).toBe('v4.channel.k8s.io');
    const [code] = (await once(session.ws, 'close')) as [number];
    expect(code).toBe(1000);
    expect([...session.frames[0]!]).toEqual([1]);
    const stdout = Buffer.concat(session.frames.filter((frame) => frame[0] === 1).map((frame) => frame.subarray(1))).toString();
    expect(stdout).toBe('hi');
    const status = session.frames.find((frame) => frame[0] === 3)!;
    expect(JSON.parse(status.subarray(1).toString())).toMatchObject({
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '7' }] },
    });
    expect(session.frames.some((frame) => frame[0] === 255)).toBe(false);
  });

  it('refuses a socket offering no exec subprotocol it serves with a 400 Status body, and a missing pod with 404', async () => {
    const refused = await rawSocket(execPath(['true'], { stdout: true }), ['v3.channel.k8s.io']);
    expect('status' in refused && refused.status).toBe(400);
    expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
    const missing = await rawSocket(`/api/v1/namespaces/${namespace}/pods/no-such-pod/exec?command=true&stdout=true`, [
      'v5.channel.k8s.io',
    ]);
    expect('status' in missing && missing.status).toBe(404);
    expect(JSON.parse((missing as { body: string }).body)).toMatchObject({
      kind: 'Status',
      reason: 'NotFound',
      message: 'pods "no-such-pod" not found',
    });
  });

  it('runs a TTY command and applies a resize sent on channel 4 before the input that follows it', async () => {
    const session = await rawSocket(
      execPath(['sh', '-c', 'read line; stty size; tty >/dev/null && echo is-a-tty'], { stdout: true, stdin: true, tty: true }),
      ['v5.channel.k8s.io'],
    );
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    session.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(JSON.stringify({ Width: 132, Height: 43 }))]));
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('go\r')]));
    await session.closed;
    const output = Buffer.concat(session.frames.filter((frame) => frame[0] === 1).map((frame) => frame.subarray(1))).toString();
    expect(output).toContain('43 132');
    expect(output).toContain('is-a-tty');
  });

  it('stops reading the command while the client is not reading, then delivers every byte', async () => {
    const chunk = 64 * 1024;
    const count = 1024;
    const script = `i=0; while [ $i -lt ${count} ]; do head -c ${chunk} /dev/zero; i=$((i+1)); echo $i > /tmp/progress; done`;
    const session = await rawSocket(execPath(['sh', '-c', script], { stdout: true, stderr: true }), ['v5.channel.k8s.io']);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    let received = 0;
    session.ws.removeAllListeners('message');
    session.ws.on('message', (data: Buffer) => {
      if (data[0] === 1) received += data.byteLength - 1;
    });
    const raw = (session.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    // Wait until the command stops advancing (it blocks on its pipe), without a fixed sleep as the assertion.
    const progress = async () => Number((await clientExec(['sh', '-c', 'cat /tmp/progress 2>/dev/null || echo 0'])).stdout.trim());
    let last = -1;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const now = await progress();
      if (now === last) break;
      last = now;
    }
    // Stalled well short of the end: at most a few MiB sit in the socket, the kernel and the pipe.
    expect(last).toBeLessThan(count);
    expect(last * chunk).toBeLessThan(32 * 1024 * 1024);
    raw.resume();
    await session.closed;
    expect(received).toBe(chunk * count);
  });

  it('kills nothing when the client closes the socket (as the kubelet)', async () => {
    const session = await rawSocket(execPath(['sh', '-c', 'echo $$ > /tmp/survivor.pid; echo started; exec sleep 600'], { stdout: true }), [
      'v5.channel.k8s.io',
    ]);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    while (
      !Buffer.concat(session.frames.map((frame) => frame.subarray(1)))
        .toString()
        .includes('started')
    )
      await once(session.ws, 'message');
    session.ws.close();
    await session.closed;
    const check = await clientExec(['sh', '-c', 'kill -0 "$(cat /tmp/survivor.pid)" && echo alive; kill "$(cat /tmp/survivor.pid)"']);
    expect(check.stdout).toBe('alive\n');
  });
});

describe('port-forward', () => {
  it('frames v4: the port as uint16 little-endian first on the data and error channels, then the data', async () => {
    const session = await rawSocket(`/api/v1/namespaces/${namespace}/pods/${pod}/portforward?ports=8080`, ['v4.channel.k8s.io']);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    expect(session.ws.protocol).toBe('v4.channel.k8s.io');
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ping\n')]));
    await session.closed;
    expect([...session.frames[0]!]).toEqual([0, 8080 & 0xff, 8080 >> 8]);
    expect([...session.frames[1]!]).toEqual([1, 8080 & 0xff, 8080 >> 8]);
    const data = Buffer.concat(
      session.frames
        .slice(2)
        .filter((frame) => frame[0] === 0)
        .map((frame) => frame.subarray(1)),
    ).toString();
    expect(data).toBe('hello-from-8080\n');
  });

  it('reaches an undeclared port through a relay inside the pod, and reports a closed port on the error channel', async () => {
    const started = await clientExec([
      'sh',
      '-c',
      "socat TCP-LISTEN:9090,fork,reuseaddr 'SYSTEM:head -c 1 >/dev/null; echo hello-from-9090' >/dev/null 2>&1 & sleep 0.3; echo up",
    ]);
    expect(started.stdout).toBe('up\n');
    const session = await rawSocket(`/api/v1/namespaces/${namespace}/pods/${pod}/portforward?ports=9090`, ['v4.channel.k8s.io']);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('x')]));
    await session.closed;
    expect(
      Buffer.concat(
        session.frames
          .slice(2)
          .filter((frame) => frame[0] === 0)
          .map((frame) => frame.subarray(1)),
      ).toString(),
    ).toBe('hello-from-9090\n');
    const closedPort = await rawSocket(`/api/v1/namespaces/${namespace}/pods/${pod}/portforward?ports=9191`, ['v4.channel.k8s.io']);
    if (!('ws' in closedPort)) throw new Error(`refused: ${closedPort.body}`);
    await closedPort.closed;
    const error = Buffer.concat(
      closedPort.frames
        .slice(2)
        .filter((frame) => frame[0] === 1)
        .map((frame) => frame.subarray(1)),
    ).toString();
    expect(error).toContain('an error occurred forwarding 9191 -> 9191');
  });

  it('holds the bytes a client sends right after the upgrade until the pod side is connected', async () => {
    // The relay to an undeclared port starts socat in the pod first: bytes sent at once arrive
    // before it is up, and the server answers only once they reached it.
    const started = await clientExec([
      'sh',
      '-c',
      "socat TCP-LISTEN:9292,fork,reuseaddr 'SYSTEM:head -n 1' >/dev/null 2>&1 & sleep 0.3; echo up",
    ]);
    expect(started.stdout).toBe('up\n');
    const session = await rawSocket(`/api/v1/namespaces/${namespace}/pods/${pod}/portforward?ports=9292`, ['v4.channel.k8s.io']);
    if (!('ws' in session)) throw new Error(`refused: ${session.body}`);
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('sent-before-the-pod-side\n')]));
    await session.closed;
    const data = Buffer.concat(
      session.frames
        .slice(2)
        .filter((frame) => frame[0] === 0)
        .map((frame) => frame.subarray(1)),
    ).toString();
    expect(data).toBe('sent-before-the-pod-side\n');
  });

  it('carries an HTTP-ish exchange through client-node PortForward behind a local listener', async () => {
    const forward = new PortForward(config);
    const server = createServer((socket) => {
      void forward.portForward(namespace, pod, [8080], socket, null, socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { connect } = await import('node:net');
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    client.on('error', () => undefined);
    // Half-closing the local socket would end client-node's WebSocket before the answer, and
    // client-node never ends the local socket when the WebSocket closes: read until the answer is in.
    client.write('GET / HTTP/1.0\n');
    let text = '';
    const answered = new Promise<void>((resolve) => {
      client.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.endsWith('\n')) resolve();
      });
    });
    // A lost answer fails with what did arrive instead of hanging until the test timeout.
    const timedOut = new Promise<void>((resolve) => setTimeout(resolve, 20_000).unref());
    await Promise.race([answered, timedOut]);
    client.destroy();
    server.close();
    expect(text).toBe('hello-from-8080\n');
  });
});
