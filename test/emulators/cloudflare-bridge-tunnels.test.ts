/**
 * Tunnels on the bridge emulator, both versions (cloudflare-bridge.md §1.6): the port rules, the
 * record shape, one record per port, DELETE 204, the 502 switches, and the URL it answers
 * reachable from this process with bytes really relayed to a server in the sandbox.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloudflareBridgeEmulator, type CloudflareBridgeEmulator } from './cloudflare/index.js';
import { bridgeClient, freshId, parseSse, streamBytes, type BridgeClient } from './cloudflare/test-client.js';

/** A node HTTP server in the sandbox on `port` that answers with what it got. */
function echoServer(port: number): string[] {
  const program = `require('http').createServer((q, s) => { let b = ''; q.on('data', (c) => (b += c)); q.on('end', () => s.end(JSON.stringify({ method: q.method, url: q.url, host: q.headers.host, body: b }))); }).listen(${port}, '127.0.0.1', () => console.log('listening'))`;
  return [process.execPath, '-e', program];
}

/** Starts `argv` in the sandbox and resolves once it printed `listening` (the command keeps running). */
async function startServer(client: BridgeClient, version: string, id: string, argv: string[]): Promise<void> {
  if (version === '0.12') {
    const response = await client.call(`/v1/sandbox/${id}/exec`, { method: 'POST', body: { argv } });
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    expect(streamBytes(parseSse(text.slice(0, text.indexOf('\n\n') + 2)), 'stdout').toString()).toBe('listening\n');
    void reader.cancel().catch(() => undefined);
    return;
  }
  const started = (await (await client.call(`/v1/sandbox/${id}/processes`, { method: 'POST', body: { argv } })).json()) as { id: string };
  const response = await client.call(`/v1/sandbox/${id}/processes/${started.id}/logs`);
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes('listening') && !text.includes('"terminal"')) {
    const block = new TextDecoder().decode((await reader.read()).value);
    for (const line of block.split('\n')) {
      if (line.startsWith('data: ')) {
        const event = JSON.parse(line.slice(6)) as { type: string; data?: string };
        text += event.type === 'stdout' ? Buffer.from(event.data!, 'base64').toString() : `"${event.type}"`;
      }
    }
  }
  expect(text).toBe('listening\n');
  void reader.cancel().catch(() => undefined);
}

describe.each(['0.12', '0.13'] as const)('bridge %s tunnels', (version) => {
  let emulator: CloudflareBridgeEmulator;
  let client: BridgeClient;

  beforeAll(async () => {
    emulator = await startCloudflareBridgeEmulator({ version });
    client = bridgeClient(emulator);
  });
  afterAll(() => emulator?.close());

  it('refuses ports outside 1024-65535 and 3000 with 400 Invalid port', async () => {
    for (const port of ['80', '1023', '3000', '65536', 'abc', '8080.5']) {
      for (const method of ['POST', 'DELETE']) {
        const response = await client.call(`/v1/sandbox/abcdefg/tunnel/${port}`, { method });
        expect(response.status, `${method} ${port}`).toBe(400);
        expect(await response.json()).toEqual({ error: 'Invalid port', code: 'invalid_request' });
      }
    }
  });

  it('relays requests through the URL it answers to the server in the sandbox, one record per port', async () => {
    const id = freshId('tunnel');
    await startServer(client, version, id, echoServer(8080));
    const response = await client.call(`/v1/sandbox/${id}/tunnel/8080`, { method: 'POST' });
    expect(response.status).toBe(200);
    const record = (await response.json()) as { id: string; port: number; url: string; hostname: string; createdAt: string };
    expect(Object.keys(record).sort()).toEqual(['createdAt', 'hostname', 'id', 'port', 'url']);
    expect(record.id).toMatch(/^quick-/);
    expect(record.port).toBe(8080);
    expect(record.hostname).toMatch(/^[a-z-]+\.trycloudflare\.localhost$/);
    expect(record.url).toBe(`http://${record.hostname}:${new URL(record.url).port}`);
    expect(Number.isNaN(Date.parse(record.createdAt))).toBe(false);
    const again = await (await client.call(`/v1/sandbox/${id}/tunnel/8080`, { method: 'POST' })).json();
    expect(again).toEqual(record);

    const body = 'x'.repeat(200_000);
    const answer = await fetch(`${record.url}/some/path?q=1`, { method: 'POST', body });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ method: 'POST', url: '/some/path?q=1', host: new URL(record.url).host, body });

    const deleted = await client.call(`/v1/sandbox/${id}/tunnel/8080`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    expect((await fetch(record.url)).status).toBe(530);
    expect((await client.call(`/v1/sandbox/${id}/tunnel/8080`, { method: 'DELETE' })).status).toBe(204);
  });

  it('checks nothing at create: a port nobody listens on gets a record and 502 at the edge', async () => {
    const record = (await (await client.call(`/v1/sandbox/${freshId('idle')}/tunnel/9090`, { method: 'POST' })).json()) as { url: string };
    expect((await fetch(record.url)).status).toBe(502);
  });

  it('loses the tunnel when the container stops', async () => {
    const id = freshId('lost');
    await startServer(client, version, id, echoServer(8081));
    const record = (await (await client.call(`/v1/sandbox/${id}/tunnel/8081`, { method: 'POST' })).json()) as { url: string };
    expect((await fetch(record.url)).status).toBe(200);
    await emulator.restartContainer(id);
    expect((await fetch(record.url)).status).toBe(530);
  });

  it('answers a named tunnel 502 tunnel_error (no Cloudflare account) and a bad name 400', async () => {
    const named = await client.call('/v1/sandbox/abcdefg/tunnel/8080', { method: 'POST', body: { name: 'app' } });
    expect(named.status).toBe(502);
    expect(await named.json()).toMatchObject({
      code: 'tunnel_error',
      error: expect.stringMatching(/^tunnel failed: Named tunnels require CLOUDFLARE_API_TOKEN/),
    });
    const bad = await client.call('/v1/sandbox/abcdefg/tunnel/8080', { method: 'POST', body: { name: 'Bad.Name' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('invalid_request');
  });

  it('fails every quick tunnel with 502 tunnel_error under tunnelFailure', async () => {
    const failing = await startCloudflareBridgeEmulator({ version, tunnelFailure: true });
    try {
      const response = await bridgeClient(failing).call('/v1/sandbox/abcdefg/tunnel/8080', { method: 'POST' });
      expect(response.status).toBe(502);
      expect(await response.json()).toEqual({
        error: 'tunnel failed: OperationInterruptedError: Tunnel recovery attempts were exhausted',
        code: 'tunnel_error',
      });
    } finally {
      await failing.close();
    }
  });
});
