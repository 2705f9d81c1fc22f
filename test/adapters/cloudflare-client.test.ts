/**
 * The bridge client against small servers made in each test on loopback: SSE framing split at
 * every byte, the bearer header, error bodies, a dropped file read, the 0.13 log stream reopened
 * from its cursor, answers of the wrong shape.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BridgeClient,
  CloudflareBridgeHttpError,
  CloudflareDroppedReadError,
  SseParser,
  type BridgeOutputEvent,
} from '../../adapters/cloudflare/index.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** Starts a server answering with `handler`; returns a client of it. */
async function serve(handler: (request: IncomingMessage, response: ServerResponse) => void | Promise<void>): Promise<BridgeClient> {
  server = createServer((request, response) => void handler(request, response));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return new BridgeClient({ connection: { url: `http://127.0.0.1:${port}`, token: 'secret-token' } });
}

/** Writes `text` one byte per write, so every split of the framing is exercised. */
async function dribble(response: ServerResponse, text: string): Promise<void> {
  for (const byte of Buffer.from(text)) {
    response.write(Buffer.from([byte]));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function collect(events: AsyncIterable<BridgeOutputEvent>): Promise<BridgeOutputEvent[]> {
  const all: BridgeOutputEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('SseParser', () => {
  it('joins data lines, names events, skips comments, takes \\r\\n and a last event without its blank line', () => {
    const parser = new SseParser();
    const events = [
      ...parser.push(': comment\r\nevent: stdout\r\ndata: a'),
      ...parser.push('\r\ndata: b\r\n\r\ndata: {"x":1}\n\nevent: exit\ndata: 3'),
      ...parser.end(),
    ];
    expect(events).toEqual([
      { event: 'stdout', data: 'a\nb' },
      { event: 'message', data: '{"x":1}' },
      { event: 'exit', data: '3' },
    ]);
  });
});

describe('BridgeClient', () => {
  it('0.12 exec: sends the bearer token and argv, decodes base64 output byte for byte, ends at exit', async () => {
    let seen: { authorization?: string; body?: unknown } = {};
    const client = await serve(async (request, response) => {
      let body = '';
      for await (const chunk of request) body += chunk;
      seen = { authorization: request.headers.authorization, body: JSON.parse(body) };
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      await dribble(
        response,
        `event: stdout\ndata: ${b64('héllo ')}\n\nevent: stderr\ndata: ${b64('oops\n')}\n\nevent: stdout\ndata: ${Buffer.from([0xe6, 0x97, 0xa5]).toString('base64')}\n\nevent: exit\ndata: {"exit_code":3}\n\n`,
      );
      response.end();
    });
    const events = await collect(await client.exec('abc', { argv: ['echo', 'a b'], timeout_ms: 5000 }));
    expect(seen).toEqual({ authorization: 'Bearer secret-token', body: { argv: ['echo', 'a b'], timeout_ms: 5000 } });
    const text = (type: string) =>
      Buffer.concat(events.filter((event) => event.type === type).map((event) => (event as { data: Uint8Array }).data)).toString();
    expect(text('stdout')).toBe('héllo 日');
    expect(text('stderr')).toBe('oops\n');
    expect(events.at(-1)).toEqual({ type: 'exit', exitCode: 3 });
  });

  it('0.12 exec: a terminal error event after HTTP 200 is an error event', async () => {
    const client = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end('event: error\ndata: {"error":"exec failed: Command execution failed","code":"exec_transport_error"}\n\n');
    });
    expect(await collect(await client.exec('abc', { argv: ['true'] }))).toEqual([
      { type: 'error', message: 'exec failed: Command execution failed', code: 'exec_transport_error' },
    ]);
  });

  it('a refusal keeps the bridge’s status, code and message', async () => {
    const client = await serve((_request, response) => {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end('{"error":"Unauthorized","code":"unauthorized"}');
    });
    const error = await client.running('abc').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CloudflareBridgeHttpError);
    expect(error).toMatchObject({ status: 401, code: 'unauthorized', detail: 'Unauthorized', route: 'GET /v1/sandbox/abc/running' });
  });

  it('an answer of the wrong shape is refused, not passed on', async () => {
    const client = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"identifier":"x"}');
    });
    await expect(client.newId()).rejects.toBeInstanceOf(CloudflareBridgeHttpError);
  });

  it('a file read whose connection drops before any answer is CloudflareDroppedReadError; a proxy’s 500 of it too', async () => {
    let mode: 'drop' | '500' = 'drop';
    const client = await serve((request, response) => {
      if (mode === 'drop') return void request.socket.destroy();
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end('Error: Network connection lost.');
    });
    await expect(client.readFile('abc', 'workspace/missing')).rejects.toBeInstanceOf(CloudflareDroppedReadError);
    mode = '500';
    await expect(client.readFile('abc', 'workspace/missing')).rejects.toBeInstanceOf(CloudflareDroppedReadError);
  });

  it('0.13 logs: replayed and followed, reopened after its last cursor when the stream drops, ending at the terminal event', async () => {
    const queries: string[] = [];
    const client = await serve((request, response) => {
      const url = new URL(request.url!, 'http://x');
      queries.push(url.search);
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      if (!url.searchParams.has('since')) {
        // Two events, then the connection ends before the process did.
        response.end(
          `data: {"type":"stdout","cursor":"c1","timestamp":"t","data":"${b64('one ')}"}\n\ndata: {"type":"stderr","cursor":"c2","timestamp":"t","data":"${b64('two ')}"}\n\n`,
        );
        return;
      }
      response.end(
        `data: {"type":"stdout","cursor":"c3","timestamp":"t","data":"${Buffer.from([0xff, 0x00]).toString('base64')}"}\n\ndata: {"type":"terminal","state":"exited","cursor":"c4","timestamp":"t","exit":{"code":0,"signal":15,"timedOut":false}}\n\n`,
      );
    });
    const events = await collect(client.processLogs('abc', 'p-1'));
    expect(queries).toEqual(['?replay=true&follow=true', '?replay=true&follow=true&since=c2']);
    expect(events.map((event) => event.type)).toEqual(['stdout', 'stderr', 'stdout', 'exit']);
    expect([...(events[2] as { data: Uint8Array }).data]).toEqual([0xff, 0x00]);
    expect(events[3]).toEqual({ type: 'exit', exitCode: 0, signal: 15, timedOut: false });
  });

  it('0.13 kill sends the signal number', async () => {
    let body: unknown;
    const client = await serve(async (request, response) => {
      let text = '';
      for await (const chunk of request) text += chunk;
      body = { url: request.url, json: JSON.parse(text) };
      response.writeHead(204);
      response.end();
    });
    await client.killProcess('abc', 'p 1', 9);
    expect(body).toEqual({ url: '/v1/sandbox/abc/processes/p%201/kill', json: { signal: 9 } });
  });
});
