/**
 * Connect RPC with the JSON codec, the way envd speaks it to the E2B SDK (connect-web over
 * fetch, HTTP/1.1): a unary call is a POST of `application/json` answered with JSON; a
 * server-streaming call is a POST of `application/connect+json` whose body is one enveloped
 * message (1 flag byte, a 4-byte big-endian length, the JSON), answered by enveloped messages
 * and a last envelope flagged end-of-stream carrying `{ error? }`. Errors are
 * `{ code, message }` with Connect's code names; a unary error's HTTP status follows the code.
 */
import type { ServerResponse } from 'node:http';
import { HttpError, type E2bRequest, type E2bRoute } from './e2b-http.js';

/** Connect's error codes (the gRPC codes, in snake case). */
export type ConnectCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'deadline_exceeded'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'data_loss'
  | 'unauthenticated';

/** The HTTP status of a unary error, per the Connect protocol. */
const httpStatusOf: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

/** An error a Connect handler throws; the client's SDK sees `code` and `message`. */
export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
  }
}

/** Anything thrown as a Connect error: an `HttpError` keeps its meaning, the rest is `internal`. */
export function asConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof HttpError) {
    // 502 is E2B's proxy answering for a sandbox that is gone: the SDK reads it as `unavailable`.
    if (error.status === 502) return new ConnectError('unavailable', error.message);
    const code = (Object.entries(httpStatusOf).find(([, status]) => status === error.status)?.[0] ?? 'unknown') as ConnectCode;
    return new ConnectError(code, error.message);
  }
  console.error('[e2b emulator] envd handler failed:', error);
  return new ConnectError('internal', error instanceof Error ? error.message : String(error));
}

export type ConnectMethod =
  | { readonly kind: 'unary'; handle(message: any, request: E2bRequest): Promise<unknown> }
  | {
      readonly kind: 'serverStream';
      /** Yields the response messages; `signal` aborts when the client goes away. */
      handle(message: any, request: E2bRequest, signal: AbortSignal): AsyncIterable<unknown>;
    };

const envelopeFlags = { message: 0, compressed: 1, endStream: 2 } as const;

/** One envelope: flags, the length, the JSON. */
export function envelope(flags: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(json.byteLength, 1);
  return Buffer.concat([head, json]);
}

/** The messages of an enveloped body (a server-streaming request holds exactly one). */
export function parseEnvelopes(body: Buffer): unknown[] {
  const messages: unknown[] = [];
  let offset = 0;
  while (offset < body.byteLength) {
    if (body.byteLength - offset < 5) throw new ConnectError('invalid_argument', 'truncated envelope');
    const flags = body.readUInt8(offset);
    const length = body.readUInt32BE(offset + 1);
    if (flags & envelopeFlags.compressed) throw new ConnectError('unimplemented', 'compressed envelopes are not supported');
    const end = offset + 5 + length;
    if (end > body.byteLength) throw new ConnectError('invalid_argument', 'truncated envelope');
    messages.push(JSON.parse(body.subarray(offset + 5, end).toString('utf8')));
    offset = end;
  }
  return messages;
}

function sendUnaryError(response: ServerResponse, error: ConnectError): void {
  if (response.headersSent) return void response.destroy(error);
  const text = JSON.stringify({ code: error.code, message: error.message });
  response.writeHead(httpStatusOf[error.code], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** Writes with backpressure: waits for `drain` (or the client going away). */
function write(response: ServerResponse, chunk: Buffer): Promise<void> {
  if (response.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}

/** The routes of one Connect service (`process.Process`, `filesystem.Filesystem`). */
export function connectRoutes(service: string, methods: Readonly<Record<string, ConnectMethod>>): E2bRoute[] {
  return Object.entries(methods).map(([name, method]) => ({
    method: 'POST',
    pattern: `/${service}/${name}`,
    async handle(request, response) {
      if (method.kind === 'unary') {
        try {
          const reply = await method.handle(await request.json(), request);
          const text = JSON.stringify(reply ?? {});
          response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          response.end(text);
        } catch (error) {
          sendUnaryError(response, asConnectError(error));
        }
        return;
      }
      const controller = new AbortController();
      response.on('close', () => controller.abort(new Error('the client closed the stream')));
      let messages: unknown[];
      try {
        messages = parseEnvelopes(await request.body());
        if (messages.length !== 1) throw new ConnectError('invalid_argument', `expected one request message, got ${messages.length}`);
      } catch (error) {
        // A streaming call's errors travel in its end-of-stream message, never as an HTTP status
        // (connect-web would only see "HTTP 400" and lose the code and message).
        const connectError = asConnectError(error);
        response.writeHead(200, { 'content-type': 'application/connect+json' });
        return void response.end(envelope(envelopeFlags.endStream, { error: { code: connectError.code, message: connectError.message } }));
      }
      response.writeHead(200, { 'content-type': 'application/connect+json' });
      // Headers go out at once: the SDK waits for them before it reads the first event.
      response.flushHeaders();
      let trailer: unknown = {};
      try {
        for await (const message of method.handle(messages[0], request, controller.signal)) {
          if (controller.signal.aborted) return;
          await write(response, envelope(envelopeFlags.message, message));
        }
      } catch (error) {
        const connectError = asConnectError(error);
        trailer = { error: { code: connectError.code, message: connectError.message } };
      }
      if (controller.signal.aborted) return;
      response.end(envelope(envelopeFlags.endStream, trailer));
    },
  }));
}
