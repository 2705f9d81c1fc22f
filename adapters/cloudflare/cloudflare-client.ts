/**
 * An HTTP client of the bridge Worker of `@cloudflare/sandbox` (0.12 and 0.13), on `fetch`. Every
 * JSON answer is validated with zod; every failure is a `CloudflareBridgeHttpError` (status,
 * code, message) or the connection's own error, for `mapCloudflareError`. Output of both exec
 * shapes comes out as one kind of event ({@link BridgeOutputEvent}), with the bytes decoded from
 * base64 exactly as the bridge sent them.
 */
import { z } from 'zod';
import { CloudflareBridgeHttpError, CloudflareDroppedReadError } from './cloudflare-errors.js';
import type { CloudflareConnection } from './cloudflare-options.js';
import { readSseEvents } from './cloudflare-sse.js';

/** One thing a running command reported. */
export type BridgeOutputEvent =
  | { readonly type: 'stdout' | 'stderr'; readonly data: Uint8Array }
  /** The command ended: its exit code, and on 0.13 the signal number and whether the bridge's timeout stopped it. */
  | { readonly type: 'exit'; readonly exitCode: number; readonly signal?: number | undefined; readonly timedOut?: boolean | undefined }
  /** The bridge gave up on the command (0.12's `error` event, 0.13's `terminal` with `state: 'error'`, or its logs were truncated). */
  | { readonly type: 'error'; readonly message: string; readonly code?: string | undefined };

const errorBodySchema = z.object({ error: z.string(), code: z.string().optional() });
const idSchema = z.object({ id: z.string().min(1) });
const runningSchema = z.object({ running: z.boolean() });
const okSchema = z.object({ ok: z.literal(true) });
const tunnelSchema = z.object({ port: z.number().int(), url: z.string().url() }).passthrough();
const exitSchema = z.object({ code: z.number().int(), signal: z.number().int().optional(), timedOut: z.boolean().optional() });
const failureSchema = z.object({ code: z.string(), message: z.string() });
const processStatusSchema = z.object({
  id: z.string().min(1),
  pid: z.number().int(),
  state: z.enum(['running', 'exited', 'error']),
  exit: exitSchema.optional(),
  error: failureSchema.optional(),
});
const logEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.enum(['stdout', 'stderr']), cursor: z.string().optional(), data: z.string() }),
  z.object({
    type: z.literal('terminal'),
    state: z.enum(['exited', 'error']),
    cursor: z.string().optional(),
    exit: exitSchema.optional(),
    error: failureSchema.optional(),
  }),
  z.object({ type: z.literal('truncated'), cursor: z.string().optional() }),
]);
const execExitSchema = z.object({ exit_code: z.number().int() });

export type BridgeProcessStatus = z.infer<typeof processStatusSchema>;
export type BridgeTunnelRecord = z.infer<typeof tunnelSchema>;

export interface BridgeClientOptions {
  connection: CloudflareConnection;
  /** The `fetch` to use (tests, proxies). @default globalThis.fetch */
  fetch?: typeof fetch | undefined;
}

/** Times the 0.13 log stream is reopened (from its last cursor) after a dropped connection. */
const logReconnects = 3;

export class BridgeClient {
  readonly #url: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(options: BridgeClientOptions) {
    this.#url = options.connection.url;
    this.#token = options.connection.token;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** `GET /v1/openapi.json`: the bridge's OpenAPI document (its paths tell the version). */
  async openApi(signal?: AbortSignal): Promise<unknown> {
    return (await this.#request('GET', '/v1/openapi.json', { signal })).json();
  }

  /** `POST /v1/sandbox`: a fresh id (nothing starts until a route under it is used). */
  async newId(signal?: AbortSignal): Promise<string> {
    return (await this.#json('POST', '/v1/sandbox', idSchema, { signal })).id;
  }

  /** `GET /running`: whether the container is up (the call itself starts one when none is). */
  async running(id: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#json('GET', `${sandboxPath(id)}/running`, runningSchema, { signal })).running;
  }

  /** `DELETE /v1/sandbox/{id}`: stops the container. Always 204 on the bridge, for unknown ids too. */
  async destroy(id: string, signal?: AbortSignal): Promise<void> {
    await (await this.#request('DELETE', sandboxPath(id), { signal })).body?.cancel();
  }

  /** 0.12's `POST /exec`: the command's events, read off the server-sent event stream. */
  async exec(
    id: string,
    body: { argv: string[]; timeout_ms?: number },
    signal?: AbortSignal,
  ): Promise<AsyncGenerator<BridgeOutputEvent, void, undefined>> {
    const response = await this.#request('POST', `${sandboxPath(id)}/exec`, { signal, json: body });
    return execEvents(response.body!);
  }

  /** 0.13's `POST /processes`: starts the command; its status (the `id` names it in the other process routes). */
  async startProcess(
    id: string,
    body: { argv: string[]; timeout?: number; env?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<BridgeProcessStatus> {
    return this.#json('POST', `${sandboxPath(id)}/processes`, processStatusSchema, { signal, json: body });
  }

  /** 0.13's `GET /processes/{processId}`. */
  async processStatus(id: string, processId: string, signal?: AbortSignal): Promise<BridgeProcessStatus> {
    return this.#json('GET', `${sandboxPath(id)}/processes/${encodeURIComponent(processId)}`, processStatusSchema, { signal });
  }

  /**
   * 0.13's `GET /processes/{processId}/logs?replay=true&follow=true`: every output event from the
   * start, then the end. A stream that drops before the end is reopened from its last cursor.
   */
  async *processLogs(id: string, processId: string, signal?: AbortSignal): AsyncGenerator<BridgeOutputEvent, void, undefined> {
    let cursor: string | undefined;
    /** Why the stream was last reopened, for the message of a truncation that follows. */
    let reopened: unknown;
    for (let attempt = 0; ; attempt++) {
      const query = new URLSearchParams({ replay: 'true', follow: 'true', ...(cursor === undefined ? {} : { since: cursor }) });
      const route = `${sandboxPath(id)}/processes/${encodeURIComponent(processId)}/logs?${query}`;
      let ended = false;
      try {
        const response = await this.#request('GET', route, { signal });
        for await (const { data } of readSseEvents(response.body!)) {
          const event = logEventSchema.parse(JSON.parse(data));
          if (event.cursor !== undefined) cursor = event.cursor;
          if (event.type === 'truncated') {
            ended = true;
            const after = reopened === undefined ? '' : ` after the log stream was reopened (${describe(reopened)})`;
            yield {
              type: 'error',
              message: `the bridge dropped part of the output (its log buffer was truncated)${after}`,
              code: 'truncated',
            };
            return;
          } else if (event.type === 'terminal') {
            ended = true;
            if (event.state === 'exited' && event.exit)
              yield { type: 'exit', exitCode: event.exit.code, signal: event.exit.signal, timedOut: event.exit.timedOut };
            else yield { type: 'error', message: event.error?.message ?? 'the process failed', code: event.error?.code };
            return;
          } else {
            yield { type: event.type, data: fromBase64(event.data) };
          }
        }
      } catch (error) {
        reopened = error;
        if (signal?.aborted || error instanceof CloudflareBridgeHttpError || attempt >= logReconnects) throw error;
        continue;
      }
      if (ended) return;
      // The stream ended without the terminal event: reopen it after what was seen.
      reopened = 'it ended before the process did';
      if (attempt >= logReconnects) throw new Error('the bridge ended the process log stream before the process ended');
    }
  }

  /** 0.13's `POST /processes/{processId}/kill` with a signal number (1 to 64). */
  async killProcess(id: string, processId: string, signalNumber: number, signal?: AbortSignal): Promise<void> {
    const route = `${sandboxPath(id)}/processes/${encodeURIComponent(processId)}/kill`;
    await (await this.#request('POST', route, { signal, json: { signal: signalNumber } })).body?.cancel();
  }

  /**
   * `GET /file/<route>`: the file's bytes as a stream. A connection the bridge drops before
   * answering (its behaviour for a missing file or a directory) is `CloudflareDroppedReadError`,
   * and so is the 500 a proxy in front of it makes of that.
   */
  async readFile(id: string, route: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const path = `${sandboxPath(id)}/file/${route}`;
    let response: Response;
    try {
      response = await this.#request('GET', path, { signal });
    } catch (error) {
      if (signal?.aborted || error instanceof CloudflareBridgeHttpError) {
        if (error instanceof CloudflareBridgeHttpError && error.status === 500 && error.code === undefined)
          throw new CloudflareDroppedReadError(path, { cause: error });
        throw error;
      }
      throw new CloudflareDroppedReadError(path, { cause: error });
    }
    return response.body ?? new ReadableStream({ start: (controller) => controller.close() });
  }

  /** `PUT /file/<route>` of at most 32 MiB (the bridge buffers the body; parents are created). */
  async writeFile(id: string, route: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#json('PUT', `${sandboxPath(id)}/file/${route}`, okSchema, { signal, body: data });
  }

  /** `POST /tunnel/{port}`: the port's quick tunnel (the same one again on a repeat call). */
  async tunnel(id: string, port: number, signal?: AbortSignal): Promise<BridgeTunnelRecord> {
    return this.#json('POST', `${sandboxPath(id)}/tunnel/${port}`, tunnelSchema, { signal });
  }

  /** `POST /persist?excludes=…`: a tar of `/workspace`, streamed. */
  async persist(id: string, excludes: readonly string[], signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const query = excludes.length > 0 ? `?${new URLSearchParams({ excludes: excludes.join(',') })}` : '';
    const response = await this.#request('POST', `${sandboxPath(id)}/persist${query}`, { signal });
    return response.body!;
  }

  /** `POST /hydrate`: extracts a tar (1 byte to 32 MiB) over `/workspace`. */
  async hydrate(id: string, archive: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#json('POST', `${sandboxPath(id)}/hydrate`, okSchema, { signal, body: archive });
  }

  async #json<T extends z.ZodType>(
    method: string,
    route: string,
    schema: T,
    options: { signal?: AbortSignal | undefined; json?: unknown; body?: Uint8Array },
  ): Promise<z.infer<T>> {
    const response = await this.#request(method, route, options);
    const text = await response.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new CloudflareBridgeHttpError(response.status, undefined, `an answer that is not JSON: ${text.slice(0, 200)}`, route);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success)
      throw new CloudflareBridgeHttpError(response.status, undefined, `an answer of an unexpected shape: ${text.slice(0, 200)}`, route);
    return parsed.data;
  }

  /** One request; a status of 400 or more becomes `CloudflareBridgeHttpError` (with the bridge's code when its body has one). */
  async #request(
    method: string,
    route: string,
    options: { signal?: AbortSignal | undefined; json?: unknown; body?: Uint8Array },
  ): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = options.body as Uint8Array<ArrayBuffer>;
    }
    const response = await this.#fetch(`${this.#url}${route}`, { method, headers, body, signal: options.signal });
    if (response.status < 400) return response;
    const text = await response.text().catch(() => '');
    let code: string | undefined;
    let detail = text.slice(0, 500) || response.statusText;
    try {
      const parsed = errorBodySchema.safeParse(JSON.parse(text));
      if (parsed.success) {
        code = parsed.data.code;
        detail = parsed.data.error;
      }
    } catch {
      // Not the bridge's JSON (Hono's plain 404, a proxy's page): the text is the detail.
    }
    throw new CloudflareBridgeHttpError(response.status, code, detail, `${method} ${route.replace(/\?.*$/, '')}`);
  }
}

function sandboxPath(id: string): string {
  return `/v1/sandbox/${encodeURIComponent(id)}`;
}

/** 0.12's exec events: `stdout`/`stderr` carry base64, `exit` `{exit_code}`, `error` `{error, code}`; the last two end the command. */
async function* execEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<BridgeOutputEvent, void, undefined> {
  for await (const { event, data } of readSseEvents(body)) {
    if (event === 'stdout' || event === 'stderr') {
      yield { type: event, data: fromBase64(data) };
    } else if (event === 'exit') {
      yield { type: 'exit', exitCode: execExitSchema.parse(JSON.parse(data)).exit_code };
      return;
    } else if (event === 'error') {
      const parsed = errorBodySchema.safeParse(safeJson(data));
      yield parsed.success ? { type: 'error', message: parsed.data.error, code: parsed.data.code } : { type: 'error', message: data };
      return;
    }
    // Other events (a later bridge's additions) carry nothing this adapter uses.
  }
}

function describe(reason: unknown): string {
  return reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function fromBase64(text: string): Uint8Array {
  const buffer = Buffer.from(text, 'base64');
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
