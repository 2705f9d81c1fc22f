/**
 * The Fly emulator's exec (`POST /v1/apps/{app}/machines/{id}/exec`), with plain `fetch` as Fly's
 * docs show it: `{ command, timeout, stdin }` in, `{ exit_code, exit_signal, stdout, stderr }`
 * out (200 whatever the exit code), 408 `deadline_exceeded` past the timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlyEmulator, type FlyEmulator } from './fly/index.js';
import { flyTestClient, type FlyTestClient } from './fly/fly-test-client.js';

let emulator: FlyEmulator;
let fly: FlyTestClient;
let exec: (body: unknown) => ReturnType<FlyTestClient['call']>;
let app: string;
let machineId: string;

beforeAll(async () => {
  emulator = await startFlyEmulator();
  fly = flyTestClient(emulator.url, emulator.token);
  app = await fly.app();
  const machine = await fly.machine(app, { config: { image: 'debian:bookworm', env: { FROM_CONFIG: 'yes' } } });
  machineId = machine.id;
  await fly.waitFor(app, machineId, 'started');
  exec = (body) => fly.call('POST', `/v1/apps/${app}/machines/${machineId}/exec`, body);
});
afterAll(async () => {
  await emulator?.close();
});

describe('exec', () => {
  it('runs an argv and answers its output and exit code (200 for a failing command too)', async () => {
    const ok = await exec({ command: ['sh', '-c', 'echo out; echo err >&2; echo "$FROM_CONFIG"'] });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ exit_code: 0, exit_signal: 0, stdout: 'out\nyes\n', stderr: 'err\n' });
    const failing = await exec({ command: ['sh', '-c', 'exit 7'] });
    expect(failing.status).toBe(200);
    expect(failing.body).toMatchObject({ exit_code: 7, stdout: '', stderr: '' });
  });

  it('passes an argv through without a shell', async () => {
    const answer = await exec({ command: ['printf', '%s|', 'a b', '$HOME', "'q'"] });
    expect(answer.body.stdout).toBe("a b|$HOME|'q'|");
  });

  it('splits the deprecated cmd string into words, quotes honoured', async () => {
    const answer = await exec({ cmd: `printf "%s|" 'one two' three` });
    expect(answer.status).toBe(200);
    expect(answer.body.stdout).toBe('one two|three|');
  });

  it('feeds stdin whole, then EOF', async () => {
    const answer = await exec({ command: ['sh', '-c', 'wc -c; cat /dev/stdin'], stdin: 'hello\nworld\n' });
    expect(answer.body.stdout.trim()).toBe('12');
    const echoed = await exec({ command: ['cat'], stdin: 'line one\nline two' });
    expect(echoed.body.stdout).toBe('line one\nline two');
  });

  it('reports a command killed by a signal: exit_signal and 128 + n', async () => {
    const answer = await exec({ command: ['sh', '-c', 'kill -TERM $$'] });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ exit_code: 143, exit_signal: 15 });
  });

  it('answers 408 deadline_exceeded past its timeout, and the command is killed', async () => {
    const answer = await exec({ command: ['sh', '-c', 'sleep 1.5; touch /tmp/survived'], timeout: 1 });
    expect(answer.status).toBe(408);
    expect(answer.body.error).toBe('deadline_exceeded: the command did not finish within 1s');
    // Long enough for the survivor to have written its file had it lived.
    const later = await exec({ command: ['sh', '-c', 'sleep 1; test -e /tmp/survived && echo survived || echo killed'], timeout: 10 });
    expect(later.body.stdout).toBe('killed\n');
  });

  it('answers 408 when a background child keeps stdout open past the timeout', async () => {
    const answer = await exec({ command: ['sh', '-c', 'sleep 5 & echo started'], timeout: 1 });
    expect(answer.status).toBe(408);
    expect(answer.body.error).toMatch(/^deadline_exceeded: /);
  });

  it('returns at once for a detached background process, which later execs reach', async () => {
    const started = await exec({ command: ['sh', '-c', 'nohup sh -c "echo \\$\\$ > /tmp/bg.pid; exec sleep 60" >/dev/null 2>&1 &'] });
    expect(started.body).toMatchObject({ exit_code: 0, stdout: '' });
    const check = await exec({
      command: [
        'sh',
        '-c',
        'for i in 1 2 3 4 5 6 7 8 9 10; do test -s /tmp/bg.pid && break; sleep 0.1; done; kill -0 "$(cat /tmp/bg.pid)" && echo running',
      ],
    });
    expect(check.body.stdout).toBe('running\n');
  });

  it('answers a program that does not exist as a shell would: exit 127', async () => {
    const answer = await exec({ command: ['no-such-program-here'] });
    expect(answer.status).toBe(200);
    expect(answer.body.exit_code).toBe(127);
    expect(answer.body.stderr).not.toBe('');
  });

  it('refuses a request without command (400), a container (400), a bad timeout (400)', async () => {
    const none = await exec({});
    expect(none.status).toBe(400);
    expect(none.body).toEqual({ error: 'invalid_argument: command is required' });
    const container = await exec({ command: ['true'], container: 'app' });
    expect(container.status).toBe(400);
    expect(container.body.error).toMatch(/^invalid_argument: container/);
    const negative = await exec({ command: ['true'], timeout: -1 });
    expect(negative.status).toBe(400);
    expect(negative.body.error).toMatch(/^invalid_argument: timeout/);
  });

  it('answers 404 for a machine that does not exist', async () => {
    const answer = await fly.call('POST', `/v1/apps/${app}/machines/00000000000000/exec`, { command: ['true'] });
    expect(answer.status).toBe(404);
    expect(answer.body).toEqual({ error: 'machine not found' });
  });
});
