/**
 * 0.12's exec and sessions on the bridge emulator, with plain `fetch` and a strict SSE parse
 * (cloudflare/test-client.ts): the framing, base64 chunks, `exit` and `error` events, HTTP 200
 * whatever happens after the stream started, the `$'…'` quoting of argv for `bash -c`, exit 127
 * and 124, no stdin, no kill on disconnect, lossy output, cwd rules and sessions
 * (cloudflare-bridge.md §1.3, §1.5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloudflareBridgeEmulator, type CloudflareBridgeEmulator } from './cloudflare/index.js';
import { commandLine, isSessionId, resolveWorkspacePath, shellQuote, sseEvent, base32 } from './cloudflare/cloudflare-wire.js';
import { bridgeClient, freshId, parseSse, streamBytes, type BridgeClient } from './cloudflare/test-client.js';

describe('the wire rules (pure)', () => {
  it('leaves safe tokens alone and ANSI-C quotes the rest', () => {
    expect(shellQuote('ls')).toBe('ls');
    expect(shellQuote('/a/b.txt')).toBe('/a/b.txt');
    expect(shellQuote('k=v,x@y:z%+-')).toBe('k=v,x@y:z%+-');
    expect(shellQuote('')).toBe("$''");
    expect(shellQuote('a b')).toBe("$'a b'");
    expect(shellQuote("it's")).toBe("$'it\\'s'");
    expect(shellQuote('a\\b')).toBe("$'a\\\\b'");
    expect(shellQuote('l1\nl2\r\t')).toBe("$'l1\\nl2\\r\\t'");
    expect(shellQuote('$HOME')).toBe("$'$HOME'");
    expect(commandLine(['echo', 'a b', 'c'])).toBe("echo $'a b' c");
  });

  it('resolves paths under /workspace only, relative ones from /workspace', () => {
    expect(resolveWorkspacePath('/workspace')).toBe('/workspace');
    expect(resolveWorkspacePath('sub/../x')).toBe('/workspace/x');
    expect(resolveWorkspacePath('/workspace/../etc')).toBeUndefined();
    expect(resolveWorkspacePath('/workspacex')).toBeUndefined();
    expect(resolveWorkspacePath('../../workspace/a')).toBe('/workspace/a');
  });

  it('frames SSE as the bridge does and checks session ids', () => {
    expect(sseEvent('stdout', 'aGkK')).toBe('event: stdout\ndata: aGkK\n\n');
    expect(sseEvent('x', 'a\nb')).toBe('event: x\ndata: a\ndata: b\n\n');
    expect(sseEvent(undefined, '{}')).toBe('data: {}\n\n');
    expect(isSessionId('s1.a-b_c')).toBe(true);
    expect(isSessionId('a..b')).toBe(false);
    expect(isSessionId('a b')).toBe(false);
    expect(base32(new Uint8Array(16)).length).toBe(26);
    expect(base32(Buffer.from('foobar'))).toBe('mzxw6ytboi');
  });
});

describe('0.12 exec', () => {
  let emulator: CloudflareBridgeEmulator;
  let client: BridgeClient;
  const id = freshId('exec');

  beforeAll(async () => {
    emulator = await startCloudflareBridgeEmulator({ version: '0.12' });
    client = bridgeClient(emulator);
  });
  afterAll(() => emulator?.close());

  it('streams base64 stdout and stderr events and a final exit event, HTTP 200 text/event-stream for a failing command', async () => {
    const response = await client.call(`/v1/sandbox/${id}/exec`, {
      method: 'POST',
      body: { argv: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'] },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('content-length')).toBeNull();
    const text = await response.text();
    expect(text).not.toMatch(/^(id|retry):/m);
    const events = parseSse(text);
    expect(streamBytes(events, 'stdout').toString()).toBe('hello\n');
    expect(streamBytes(events, 'stderr').toString()).toBe('oops\n');
    expect(events.at(-1)).toEqual({ event: 'exit', data: '{"exit_code":3}' });
    expect(events.filter((event) => event.event === 'exit')).toHaveLength(1);
    for (const event of events.slice(0, -1)) expect(event.data).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it('passes hostile argv byte for byte through the bash -c string', async () => {
    const hostile = [
      '',
      ' ',
      'a b',
      "it's",
      '"dq"',
      '$HOME',
      '$(id)',
      '`id`',
      'back\\slash',
      'new\nline',
      'cr\rtab\t',
      '日本語é',
      '*',
      ';',
      '&&',
      '-n',
      '\\n',
      "$'x'",
      '!',
      '#c',
    ];
    const { status, events } = await client.exec(id, { argv: ['printf', '%s\\0', ...hostile] });
    expect(status).toBe(200);
    expect(streamBytes(events, 'stdout').toString('utf8').split('\0').slice(0, -1)).toEqual(hostile);
    expect(events.at(-1)).toEqual({ event: 'exit', data: '{"exit_code":0}' });
  });

  it('reports a missing program as bash does: its message on stderr and exit 127, not an HTTP error', async () => {
    const { status, events } = await client.exec(id, { argv: ['nonexistent-prog', 'x'] });
    expect(status).toBe(200);
    expect(streamBytes(events, 'stderr').toString()).toBe('/bin/bash: line 1: nonexistent-prog: command not found\n');
    expect(events.at(-1)).toEqual({ event: 'exit', data: '{"exit_code":127}' });
  });

  it('kills a command at timeout_ms: "Command timed out after Nms" on stderr, exit 124, and nothing after the deadline', async () => {
    const { events } = await client.exec(id, { argv: ['sh', '-c', 'echo started; sleep 0.6; touch /workspace/late'], timeout_ms: 200 });
    expect(streamBytes(events, 'stdout').toString()).toBe('started\n');
    expect(streamBytes(events, 'stderr').toString()).toBe('Command timed out after 200ms\n');
    expect(events.at(-1)).toEqual({ event: 'exit', data: '{"exit_code":124}' });
    const later = await client.exec(id, { argv: ['sh', '-c', 'sleep 1; test -e /workspace/late && echo written || echo absent'] });
    expect(streamBytes(later.events, 'stdout').toString()).toBe('absent\n');
  });

  it('runs in /workspace by default, a relative cwd from there, refuses one outside (403), and a missing one is an error event', async () => {
    await client.exec(id, { argv: ['mkdir', '-p', '/workspace/sub'] });
    expect(streamBytes((await client.exec(id, { argv: ['pwd'] })).events, 'stdout').toString()).toBe('/workspace\n');
    expect(streamBytes((await client.exec(id, { argv: ['pwd'], cwd: 'sub' })).events, 'stdout').toString()).toBe('/workspace/sub\n');
    const outside = await client.call(`/v1/sandbox/${id}/exec`, { method: 'POST', body: { argv: ['pwd'], cwd: '/tmp' } });
    expect(outside.status).toBe(403);
    expect(await outside.json()).toEqual({ error: 'cwd must resolve to a location within /workspace', code: 'invalid_request' });
    const missing = await client.exec(id, { argv: ['pwd'], cwd: '/workspace/nope' });
    expect(missing.status).toBe(200);
    expect(missing.events).toEqual([
      { event: 'error', data: '{"error":"exec failed: Command execution failed","code":"exec_transport_error"}' },
    ]);
  });

  it('refuses bad JSON and an empty argv with 400 invalid_request', async () => {
    const bad = await client.call(`/v1/sandbox/${id}/exec`, {
      method: 'POST',
      body: '{nope',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'Invalid JSON body', code: 'invalid_request' });
    const empty = await client.call(`/v1/sandbox/${id}/exec`, { method: 'POST', body: { argv: [] } });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toEqual({ error: 'argv must be a non-empty array', code: 'invalid_request' });
  });

  it('replaces bytes that are not UTF-8 with U+FFFD, and every chunk is valid UTF-8 on its own', async () => {
    const lossy = await client.exec(id, { argv: ['printf', '\\377\\376\\000A'] });
    expect(streamBytes(lossy.events, 'stdout').toString('hex')).toBe('efbfbdefbfbd0041');
    const wide = await client.exec(id, { argv: ['bash', '-c', 'for i in $(seq 3000); do printf "日本語é"; done'] });
    const strict = new TextDecoder('utf-8', { fatal: true });
    const chunks = wide.events.filter((event) => event.event === 'stdout');
    for (const chunk of chunks) expect(() => strict.decode(Buffer.from(chunk.data, 'base64'))).not.toThrow();
    expect(streamBytes(wide.events, 'stdout').toString()).toBe('日本語é'.repeat(3000));
  });

  it('gives the command no stdin (it reads EOF at once)', async () => {
    const { events } = await client.exec(id, { argv: ['sh', '-c', 'cat; echo after-cat'] });
    expect(streamBytes(events, 'stdout').toString()).toBe('after-cat\n');
  });

  it('streams output as it comes: the first event arrives while the command still waits', async () => {
    const gate = `/workspace/gate-${freshId('g')}`;
    const response = await client.call(`/v1/sandbox/${id}/exec`, {
      method: 'POST',
      body: { argv: ['sh', '-c', `echo first; while [ ! -e ${gate} ]; do sleep 0.02; done; echo second`], timeout_ms: 20_000 },
    });
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(parseSse(first)).toEqual([{ event: 'stdout', data: Buffer.from('first\n').toString('base64') }]);
    await client.call(`/v1/sandbox/${id}/file${gate}`, { method: 'PUT', body: '' });
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const events = parseSse(rest);
    expect(streamBytes(events, 'stdout').toString()).toBe('second\n');
    expect(events.at(-1)!.event).toBe('exit');
  });

  it('keeps running a command whose client went away', async () => {
    const done = `/workspace/done-${freshId('d')}`;
    const gone = new AbortController();
    const response = await client.call(`/v1/sandbox/${id}/exec`, {
      method: 'POST',
      body: { argv: ['sh', '-c', `echo go; sleep 0.3; echo finished > ${done}`] },
      signal: gone.signal,
    });
    await response.body!.getReader().read();
    gone.abort();
    const waited = await client.exec(id, {
      argv: ['sh', '-c', `while [ ! -e ${done} ]; do sleep 0.05; done; cat ${done}`],
      timeout_ms: 10_000,
    });
    expect(streamBytes(waited.events, 'stdout').toString()).toBe('finished\n');
  });

  it('ends an exec whose container stopped under it with a terminal error event', async () => {
    const other = freshId('stopped');
    const response = await client.call(`/v1/sandbox/${other}/exec`, { method: 'POST', body: { argv: ['sh', '-c', 'echo up; sleep 30'] } });
    const reader = response.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    await emulator.restartContainer(other);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const events = parseSse(text);
    expect(events.at(-1)!.event).toBe('error');
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ code: 'exec_transport_error' });
  });

  it('answers the PTY route 400 without a WebSocket upgrade (the terminal itself is not emulated: 502)', async () => {
    const plain = await client.call(`/v1/sandbox/${id}/pty`);
    expect(plain.status).toBe(400);
    expect(await plain.json()).toEqual({ error: 'WebSocket upgrade required', code: 'invalid_request' });
  });

  describe('sessions', () => {
    it("applies a session's cwd and env; cd and export do not persist; unknown ids run sessionless", async () => {
      await client.exec(id, { argv: ['mkdir', '-p', '/workspace/sub'] });
      const created = await client.call(`/v1/sandbox/${id}/session`, {
        method: 'POST',
        body: { id: 's1', cwd: '/workspace/sub', env: { FOO: 'bar' } },
      });
      expect(created.status).toBe(200);
      expect(await created.json()).toEqual({ id: 's1' });
      const inSession = { 'session-id': 's1' };
      const first = await client.exec(id, { argv: ['sh', '-c', 'pwd; echo "$FOO"; cd /workspace; export FOO=changed'] }, inSession);
      expect(streamBytes(first.events, 'stdout').toString()).toBe('/workspace/sub\nbar\n');
      const second = await client.exec(id, { argv: ['sh', '-c', 'pwd; echo "$FOO"'] }, inSession);
      expect(streamBytes(second.events, 'stdout').toString()).toBe('/workspace/sub\nbar\n');
      const unknown = await client.exec(id, { argv: ['sh', '-c', 'pwd; echo "[$FOO]"'] }, { 'session-id': 'nosuch' });
      expect(streamBytes(unknown.events, 'stdout').toString()).toBe('/workspace\n[]\n');
    });

    it('refuses a malformed Session-Id with 400', async () => {
      for (const bad of ['a..b', 'has space', 'x'.repeat(129)]) {
        const response = await client.call(`/v1/sandbox/${id}/exec`, {
          method: 'POST',
          body: { argv: ['true'] },
          headers: { 'session-id': bad },
        });
        expect(response.status).toBe(400);
        expect(await response.json()).toEqual({ error: 'Invalid session ID format', code: 'invalid_request' });
      }
    });

    it('makes an auto id session-<ms> without a body, deletes once, and answers 502 session_error on the second delete', async () => {
      const auto = (await (await client.call(`/v1/sandbox/${id}/session`, { method: 'POST' })).json()) as { id: string };
      expect(auto.id).toMatch(/^session-\d{13}$/);
      const deleted = await client.call(`/v1/sandbox/${id}/session/${auto.id}`, { method: 'DELETE' });
      expect(deleted.status).toBe(200);
      expect(await deleted.json()).toEqual({ success: true, sessionId: auto.id });
      const again = await client.call(`/v1/sandbox/${id}/session/${auto.id}`, { method: 'DELETE' });
      expect(again.status).toBe(502);
      expect(await again.json()).toEqual({ error: `session delete failed: Session '${auto.id}' not found`, code: 'session_error' });
    });
  });
});
