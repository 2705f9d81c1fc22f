/**
 * 0.13's process routes on the bridge emulator (cloudflare-bridge.md §1.9): real argv, env,
 * cwd, timeout, kill with a signal, status JSON, and the log stream of `data:` events with
 * base64 of the raw bytes and cursors (`since`, `replay`, `follow`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloudflareBridgeEmulator, type CloudflareBridgeEmulator } from './cloudflare/index.js';
import { bridgeClient, freshId, parseSse, type BridgeClient } from './cloudflare/test-client.js';

interface Status {
  id: string;
  pid: number;
  command: string[];
  cwd: string;
  state: 'running' | 'exited' | 'error';
  startedAt: string;
  endedAt?: string;
  exit?: { code: number; signal?: number; timedOut: boolean };
}

interface LogEvent {
  type: 'stdout' | 'stderr' | 'terminal' | 'truncated';
  cursor: string;
  timestamp: string;
  data?: string;
  state?: string;
  exit?: Status['exit'];
}

describe('0.13 processes', () => {
  let emulator: CloudflareBridgeEmulator;
  let client: BridgeClient;
  const id = freshId('proc');

  beforeAll(async () => {
    emulator = await startCloudflareBridgeEmulator({ version: '0.13' });
    client = bridgeClient(emulator);
  });
  afterAll(() => emulator?.close());

  async function start(body: unknown): Promise<Status> {
    const response = await client.call(`/v1/sandbox/${id}/processes`, { method: 'POST', body });
    expect(response.status).toBe(200);
    return (await response.json()) as Status;
  }

  async function logs(processId: string, query = ''): Promise<LogEvent[]> {
    const response = await client.call(`/v1/sandbox/${id}/processes/${processId}/logs${query}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const events = parseSse(await response.text());
    for (const event of events) expect(event.event).toBeUndefined();
    return events.map((event) => JSON.parse(event.data) as LogEvent);
  }

  const bytesOf = (events: LogEvent[], type: 'stdout' | 'stderr') =>
    Buffer.concat(events.filter((event) => event.type === type).map((event) => Buffer.from(event.data!, 'base64')));

  it('starts argv as is with env and cwd, answers its status, and logs raw bytes byte-exact with a terminal event', async () => {
    await client.call(`/v1/sandbox/${id}/file/workspace/sub/.keep`, { method: 'PUT', body: '' });
    const status = await start({
      argv: ['sh', '-c', 'printf "\\377\\376\\000A"; printf "%s|%s" "$FOO" "$(pwd)" >&2; exit 4', 'x'],
      env: { FOO: 'b a r' },
      cwd: 'sub',
    });
    expect(status).toMatchObject({ command: ['sh', '-c', expect.any(String), 'x'], cwd: '/workspace/sub', state: 'running' });
    expect(status.id).toEqual(expect.any(String));
    expect(Number.isInteger(status.pid) && status.pid > 0).toBe(true);
    expect(Number.isNaN(Date.parse(status.startedAt))).toBe(false);
    const events = await logs(status.id);
    expect(bytesOf(events, 'stdout').toString('hex')).toBe('fffe0041');
    expect(bytesOf(events, 'stderr').toString()).toBe('b a r|/workspace/sub');
    expect(events.at(-1)).toMatchObject({ type: 'terminal', state: 'exited', exit: { code: 4, timedOut: false } });
    const cursors = events.map((event) => event.cursor);
    expect(new Set(cursors).size).toBe(cursors.length);
    const after = (await (await client.call(`/v1/sandbox/${id}/processes/${status.id}`)).json()) as Status;
    expect(after).toMatchObject({ id: status.id, pid: status.pid, state: 'exited', exit: { code: 4, timedOut: false } });
    expect(after.endedAt).toEqual(expect.any(String));
  });

  it('does not go through a shell: an argv with spaces and quotes reaches the program as given', async () => {
    const hostile = ['a b', "it's", '$HOME', '', 'new\nline', '日本語'];
    const status = await start({ argv: ['printf', '%s\\0', ...hostile] });
    expect(
      bytesOf(await logs(status.id), 'stdout')
        .toString()
        .split('\0')
        .slice(0, -1),
    ).toEqual(hostile);
  });

  it('resumes after a cursor with since, and replay=false / follow=false bound the stream', async () => {
    const status = await start({ argv: ['sh', '-c', 'echo one; sleep 0.1; echo two; sleep 0.1; echo three'] });
    const all = await logs(status.id);
    const first = all.find((event) => event.type === 'stdout')!;
    const resumed = await logs(status.id, `?since=${first.cursor}`);
    expect(resumed[0]!.cursor).not.toBe(first.cursor);
    expect(Buffer.concat([Buffer.from(first.data!, 'base64'), bytesOf(resumed, 'stdout')]).toString()).toBe('one\ntwo\nthree\n');
    expect(await logs(status.id, '?replay=false&follow=false')).toEqual([]);
    const snapshot = await logs(status.id, '?follow=false');
    expect(snapshot).toEqual(all);
    const bad = await client.call(`/v1/sandbox/${id}/processes/${status.id}/logs?since=nonsense`);
    expect(bad.status).toBe(400);
  });

  it('follows a running process: follow=false gives what is there and ends without a terminal event', async () => {
    const gate = `/workspace/gate-${freshId('g')}`;
    const status = await start({
      argv: ['sh', '-c', `echo before; while [ ! -e ${gate} ]; do sleep 0.02; done; echo after`],
      timeout: 20_000,
    });
    let sofar: LogEvent[] = [];
    while (sofar.length === 0) sofar = await logs(status.id, '?follow=false');
    expect(sofar.map((event) => event.type)).toEqual(['stdout']);
    expect(((await (await client.call(`/v1/sandbox/${id}/processes/${status.id}`)).json()) as Status).state).toBe('running');
    await client.call(`/v1/sandbox/${id}/file${gate}`, { method: 'PUT', body: '' });
    const followed = await logs(status.id);
    expect(bytesOf(followed, 'stdout').toString()).toBe('before\nafter\n');
    expect(followed.at(-1)!.type).toBe('terminal');
  });

  it('kills with the signal asked for (default 15, also without a body), 204', async () => {
    const interrupted = await start({ argv: ['sleep', '30'] });
    const kill = await client.call(`/v1/sandbox/${id}/processes/${interrupted.id}/kill`, { method: 'POST', body: { signal: 2 } });
    expect(kill.status).toBe(204);
    expect((await logs(interrupted.id)).at(-1)).toMatchObject({ type: 'terminal', exit: { code: 130, signal: 2, timedOut: false } });
    const terminated = await start({ argv: ['sleep', '30'] });
    expect((await client.call(`/v1/sandbox/${id}/processes/${terminated.id}/kill`, { method: 'POST' })).status).toBe(204);
    expect((await logs(terminated.id)).at(-1)).toMatchObject({ type: 'terminal', exit: { code: 143, signal: 15 } });
    const bad = await client.call(`/v1/sandbox/${id}/processes/${terminated.id}/kill`, { method: 'POST', body: { signal: 65 } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'signal must be an integer between 1 and 64', code: 'invalid_request' });
    expect((await client.call(`/v1/sandbox/${id}/processes/${terminated.id}/kill`, { method: 'POST', body: { signal: 9 } })).status).toBe(
      204,
    );
  });

  it("kills the process's whole group, children included", async () => {
    const status = await start({ argv: ['sh', '-c', 'sleep 30 & echo $! > /workspace/child.pid; echo ready; wait'] });
    while (
      !bytesOf(await logs(status.id, '?follow=false'), 'stdout')
        .toString()
        .includes('ready')
    );
    expect((await client.call(`/v1/sandbox/${id}/processes/${status.id}/kill`, { method: 'POST', body: { signal: 15 } })).status).toBe(204);
    expect((await logs(status.id)).at(-1)).toMatchObject({ type: 'terminal', exit: { signal: 15 } });
    const check = await start({ argv: ['sh', '-c', 'kill -0 "$(cat /workspace/child.pid)" 2>/dev/null && echo alive || echo gone'] });
    expect(bytesOf(await logs(check.id), 'stdout').toString()).toBe('gone\n');
  });

  it('kills at the timeout and says timedOut', async () => {
    const status = await start({ argv: ['sleep', '30'], timeout: 200 });
    expect((await logs(status.id)).at(-1)).toMatchObject({ type: 'terminal', state: 'exited', exit: { timedOut: true } });
  });

  it('bounds what it keeps for replays without losing bytes for a reader that is connected', async () => {
    const small = await startCloudflareBridgeEmulator({ version: '0.13', processLogBytes: 256 * 1024 });
    try {
      const other = bridgeClient(small);
      const sandbox = freshId('bounded');
      const gate = `/workspace/gate-${freshId('g')}`;
      const total = 16 * 1024 * 1024;
      const script = `while [ ! -e ${gate} ]; do sleep 0.02; done; head -c ${total} /dev/zero`;
      const started = (await (
        await other.call(`/v1/sandbox/${sandbox}/processes`, { method: 'POST', body: { argv: ['sh', '-c', script] } })
      ).json()) as Status;
      // The reader is connected once its answer has started; only then does the output begin.
      const stream = await other.call(`/v1/sandbox/${sandbox}/processes/${started.id}/logs`);
      await other.call(`/v1/sandbox/${sandbox}/file${gate}`, { method: 'PUT', body: '' });
      const reader = stream.body!.getReader();
      let text = new TextDecoder().decode((await reader.read()).value);
      // The reader lags: the process makes far more than the bound meanwhile (or waits for it).
      await other.call(`/v1/sandbox/${sandbox}/processes`, { method: 'POST', body: { argv: ['sleep', '0.5'] } }).then(async (answer) => {
        const pause = (await answer.json()) as Status;
        await (await other.call(`/v1/sandbox/${sandbox}/processes/${pause.id}/logs`)).text();
      });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const live = parseSse(text).map((event) => JSON.parse(event.data) as LogEvent);
      expect(bytesOf(live, 'stdout').byteLength).toBe(total);
      expect(live.at(-1)).toMatchObject({ type: 'terminal', exit: { code: 0 } });
      const late = parseSse(await (await other.call(`/v1/sandbox/${sandbox}/processes/${started.id}/logs`)).text()).map(
        (event) => JSON.parse(event.data) as LogEvent,
      );
      expect(late[0]!.type).toBe('truncated');
      expect(bytesOf(late, 'stdout').byteLength).toBeLessThan(total);
      expect(late.at(-1)).toMatchObject({ type: 'terminal' });
    } finally {
      await small.close();
    }
  });

  it('lists processes and answers 404 not_found for an unknown one', async () => {
    const listed = (await (await client.call(`/v1/sandbox/${id}/processes`)).json()) as Status[];
    expect(listed.length).toBeGreaterThan(0);
    for (const path of ['nope', 'nope/logs']) {
      const response = await client.call(`/v1/sandbox/${id}/processes/${path}`);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: 'Process not found', code: 'not_found' });
    }
    expect((await client.call(`/v1/sandbox/${id}/processes/nope/kill`, { method: 'POST' })).status).toBe(404);
  });

  it('validates the request: argv, timeout, env, cwd (403 outside /workspace), and a program that cannot start (502)', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ argv: [] }, 400, 'argv must be a non-empty array'],
      [{ argv: ['ls', 3] }, 400, 'argv items must be strings'],
      [{ argv: [''] }, 400, 'argv executable must be non-empty'],
      [{ argv: ['ls'], timeout: -1 }, 400, 'timeout must be a positive finite number'],
      [{ argv: ['ls'], env: { A: 1 } }, 400, 'env must be an object of strings'],
      [{ argv: ['ls'], cwd: '/etc' }, 403, 'cwd must resolve to a location within /workspace'],
    ];
    for (const [body, status, error] of cases) {
      const response = await client.call(`/v1/sandbox/${id}/processes`, { method: 'POST', body });
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(await response.json()).toEqual({ error, code: 'invalid_request' });
    }
    for (const body of [{ argv: ['nonexistent-prog'] }, { argv: ['ls'], cwd: '/workspace/missing-dir' }]) {
      const response = await client.call(`/v1/sandbox/${id}/processes`, { method: 'POST', body });
      expect(response.status).toBe(502);
      expect(((await response.json()) as { code: string }).code).toBe('process_error');
    }
  });

  it('has no exec, session or pty routes (404), and running still answers', async () => {
    for (const [method, path] of [
      ['POST', 'exec'],
      ['POST', 'session'],
      ['GET', 'pty'],
    ] as const) {
      expect((await client.call(`/v1/sandbox/${id}/${path}`, { method })).status).toBe(404);
    }
    expect(await (await client.call(`/v1/sandbox/${id}/running`)).json()).toEqual({ running: true });
  });
});
