/**
 * The Fly Machines client against a scripted HTTP server on loopback: request shapes, response
 * validation, the error table, and retries (idempotent calls only; 429 after its Retry-After).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FlyClient, mapFlyError, FlyApiError } from '../../adapters/fly/index.js';
import { errorDetail, parseRetryAfter } from '../../adapters/fly/fly-client.js';
import { SandboxEmitter } from '../../src/kit/index.js';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: unknown;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string>; raw?: string };

let server: Server;
let base: string;
const seen: Seen[] = [];
let answers: Answer[] = [];

beforeAll(async () => {
  server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      seen.push({
        method: request.method ?? '',
        url: request.url ?? '',
        authorization: request.headers.authorization,
        body: text ? JSON.parse(text) : undefined,
      });
      const answer = answers.shift() ?? { status: 500, body: { error: 'no answer scripted' } };
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      response.end(answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

afterEach(() => {
  seen.length = 0;
  answers = [];
});

function client(events?: SandboxEmitter) {
  return new FlyClient({ apiHostname: base, token: 'fly-test-token', events });
}

const machine = { id: '148ed123f0e789', name: 'web', state: 'started', config: { image: 'debian', metadata: { a: '1' } } };

describe('FlyClient requests', () => {
  it('sends the bearer token and the create body, and validates the machine it gets back', async () => {
    answers = [{ status: 200, body: machine }];
    const created = await client().createMachine('app-1', {
      name: 'web',
      region: 'ams',
      config: { image: 'debian', metadata: {}, init: { exec: ['/bin/sh'] }, auto_destroy: true, restart: { policy: 'no' } },
    });
    expect(created).toMatchObject({ id: machine.id, state: 'started' });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/apps/app-1/machines', authorization: 'Bearer fly-test-token' });
    expect(seen[0]!.body).toMatchObject({ name: 'web', region: 'ams', config: { image: 'debian' } });
  });

  it('turns a metadata filter into metadata.<key> query parameters', async () => {
    answers = [{ status: 200, body: [machine] }];
    const list = await client().listMachines('app-1', { sandport_managed: '1', team: 'a b' });
    expect(list).toHaveLength(1);
    const url = new URL(seen[0]!.url, base);
    expect(url.pathname).toBe('/v1/apps/app-1/machines');
    expect(url.searchParams.get('metadata.sandport_managed')).toBe('1');
    expect(url.searchParams.get('metadata.team')).toBe('a b');
  });

  it('execs an argv with whole stdin and whole seconds, and reads the buffered answer', async () => {
    answers = [{ status: 200, body: { exit_code: 3, exit_signal: 0, stdout: 'out', stderr: 'err' } }];
    const answer = await client().exec('app-1', machine.id, { command: ['cat'], stdin: 'hello', timeoutSeconds: 1.2 });
    expect(answer).toEqual({ exitCode: 3, stdout: 'out', stderr: 'err' });
    expect(seen[0]!.body).toEqual({ command: ['cat'], stdin: 'hello', timeout: 2 });
  });

  it('reports a wait that ran out (408) as false, and clamps its timeout to Fly’s 60 s', async () => {
    answers = [
      { status: 408, body: { error: 'deadline_exceeded' } },
      { status: 200, body: { ok: true } },
    ];
    expect(await client().waitMachine('app-1', machine.id, 'started', 600)).toBe(false);
    expect(new URL(seen[0]!.url, base).searchParams.get('timeout')).toBe('60');
    expect(await client().waitMachine('app-1', machine.id, 'started', 5)).toBe(true);
  });

  it('refuses an answer of the wrong shape with SandboxProviderError', async () => {
    answers = [{ status: 200, body: { id: 42 } }];
    await expect(client().getMachine('app-1', 'x')).rejects.toMatchObject({
      code: 'provider',
      message: expect.stringMatching(/unexpected shape/),
    });
    answers = [{ status: 200, raw: 'not json' }];
    await expect(client().getMachine('app-1', 'x')).rejects.toMatchObject({ code: 'provider', message: expect.stringMatching(/not JSON/) });
  });
});

describe('FlyClient errors', () => {
  it('maps statuses through the kit table, keeping Fly’s error text and the cause', async () => {
    answers = [{ status: 404, body: { error: 'machine not found' } }];
    const notFound = await client()
      .getMachine('app-1', 'gone', undefined, 'app-1:gone')
      .catch((error: unknown) => error);
    expect(notFound).toMatchObject({ code: 'sandbox_not_found', sandboxId: 'app-1:gone' });
    expect((notFound as Error).cause).toBeInstanceOf(FlyApiError);
    expect((notFound as Error).message).toContain('machine not found');

    answers = [{ status: 401, body: { error: 'Authenticate: token validation error' } }];
    await expect(client().getApp('app-1')).rejects.toMatchObject({ code: 'authentication' });

    answers = [{ status: 422, body: { error: 'Name has already been taken' } }];
    await expect(client().createApp({ name: 'app-1', org: 'personal' })).rejects.toMatchObject({ code: 'already_exists' });

    answers = [{ status: 400, body: { error: 'invalid_argument: config.image is required' } }];
    await expect(client().createMachine('app-1', { config: {} as never })).rejects.toMatchObject({
      code: 'invalid_argument',
      argument: 'create options',
    });

    answers = [{ status: 412, body: { error: 'failed_precondition: machine is not started' } }];
    await expect(client().exec('app-1', 'm', { command: ['true'], timeoutSeconds: 1 })).rejects.toMatchObject({
      code: 'provider',
      retryable: false,
    });
  });

  it('fails without a token before any request', async () => {
    const saved = process.env.FLY_API_TOKEN;
    delete process.env.FLY_API_TOKEN;
    try {
      await expect(new FlyClient({ apiHostname: base }).getApp('a')).rejects.toMatchObject({ code: 'authentication' });
      expect(seen).toHaveLength(0);
    } finally {
      if (saved !== undefined) process.env.FLY_API_TOKEN = saved;
    }
  });

  it('takes its base URL and token from FLY_API_HOSTNAME and FLY_API_TOKEN', async () => {
    const saved = { host: process.env.FLY_API_HOSTNAME, token: process.env.FLY_API_TOKEN };
    process.env.FLY_API_HOSTNAME = `${base}/`;
    process.env.FLY_API_TOKEN = 'from-env';
    try {
      answers = [{ status: 200, body: { name: 'a' } }];
      const fromEnv = new FlyClient();
      expect(fromEnv.apiHostname).toBe(base);
      await fromEnv.getApp('a');
      expect(seen[0]!.authorization).toBe('Bearer from-env');
    } finally {
      for (const [key, value] of [
        ['FLY_API_HOSTNAME', saved.host],
        ['FLY_API_TOKEN', saved.token],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('maps a refused connection to a retryable provider error', async () => {
    const closed = new FlyClient({ apiHostname: 'http://127.0.0.1:1', token: 't', retries: 0 });
    await expect(closed.getApp('a')).rejects.toMatchObject({ code: 'provider', retryable: true });
  });

  it('maps unknown errors and keeps what it was given', () => {
    const cause = new Error('boom');
    expect(mapFlyError(cause, { operation: 'create' })).toMatchObject({ code: 'provider', cause });
    expect(errorDetail('{"error":"x"}')).toBe('x');
    expect(errorDetail('plain')).toBe('plain');
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('FlyClient retries', () => {
  it('retries an idempotent call after a 429 (honouring Retry-After) and a 503, with retry events', async () => {
    const events = new SandboxEmitter();
    const retries: number[] = [];
    events.on('retry', (event) => retries.push(event.attempt));
    answers = [
      { status: 429, body: { error: 'rate limited' }, headers: { 'retry-after': '0' } },
      { status: 503, body: { error: 'unavailable' } },
      { status: 200, body: machine },
    ];
    await expect(client(events).getMachine('app-1', machine.id)).resolves.toMatchObject({ id: machine.id });
    expect(seen).toHaveLength(3);
    expect(retries).toEqual([1, 2]);
  });

  it('never retries a call that is not idempotent', async () => {
    answers = [
      { status: 503, body: { error: 'unavailable' } },
      { status: 200, body: { exit_code: 0 } },
    ];
    await expect(client().exec('app-1', 'm', { command: ['true'], timeoutSeconds: 1 })).rejects.toMatchObject({
      code: 'provider',
      retryable: true,
    });
    answers = [
      { status: 429, body: { error: 'rate limited' }, headers: { 'retry-after': '0' } },
      { status: 200, body: machine },
    ];
    await expect(
      client().createMachine('app-1', {
        config: { image: 'x', metadata: {}, init: { exec: [] }, auto_destroy: true, restart: { policy: 'no' } },
      }),
    ).rejects.toMatchObject({ code: 'provider', statusCode: 429 });
    expect(seen.filter((request) => request.method === 'POST')).toHaveLength(2);
  });

  it('stops retrying when the signal aborts, with its reason', async () => {
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    answers = [{ status: 503, body: { error: 'unavailable' } }];
    const call = client().getApp('a', controller.signal);
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
  });
});
