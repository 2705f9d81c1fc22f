/**
 * Helpers for the emulator's own tests (test/emulators/cloudflare-bridge-*.test.ts): plain
 * `fetch` calls with the bearer token, and a strict parser of the bridge's server-sent events
 * that checks the framing as it goes (`event:` then `data:` lines, a blank line, nothing else).
 */

/** One parsed event: its name (undefined for `data:`-only events, as 0.13's logs) and its data lines joined. */
export interface SseEvent {
  readonly event: string | undefined;
  readonly data: string;
}

/**
 * Parses a whole SSE body. Throws on anything the bridge never writes: an `id:` or `retry:`
 * field, a comment, a field without the space after the colon, a final event without its blank line.
 */
export function parseSse(text: string): SseEvent[] {
  if (text === '') return [];
  if (!text.endsWith('\n\n')) throw new Error(`the stream does not end with a blank line: ${JSON.stringify(text.slice(-40))}`);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((block) => {
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        const match = /^(event|data): (.*)$/.exec(line);
        if (!match) throw new Error(`not a line the bridge writes: ${JSON.stringify(line)}`);
        if (match[1] === 'event') {
          if (event !== undefined || data.length > 0) throw new Error(`event: after data: in ${JSON.stringify(block)}`);
          event = match[2];
        } else data.push(match[2]!);
      }
      if (data.length === 0) throw new Error(`an event without data: ${JSON.stringify(block)}`);
      return { event, data: data.join('\n') };
    });
}

/** The bytes of every `name` event of a 0.12 exec stream, base64-decoded and joined. */
export function streamBytes(events: readonly SseEvent[], name: 'stdout' | 'stderr'): Buffer {
  return Buffer.concat(events.filter((event) => event.event === name).map((event) => Buffer.from(event.data, 'base64')));
}

export interface BridgeClient {
  readonly url: string;
  /** `fetch(url + path)` with `Authorization: Bearer <token>` (and JSON for a plain-object body). */
  call(path: string, init?: Omit<RequestInit, 'body'> & { body?: unknown }): Promise<Response>;
  /** A 0.12 exec: status, content type and the parsed events. */
  exec(
    sandboxId: string,
    body: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; type: string | null; events: SseEvent[] }>;
}

export function bridgeClient(emulator: { url: string; token: string | undefined }): BridgeClient {
  const call: BridgeClient['call'] = (path, init = {}) => {
    const headers = new Headers(init.headers);
    if (emulator.token !== undefined && !headers.has('authorization')) headers.set('authorization', `Bearer ${emulator.token}`);
    let body = init.body as RequestInit['body'];
    if (init.body !== undefined && typeof init.body === 'object' && !(init.body instanceof Uint8Array) && !(init.body instanceof Blob)) {
      body = JSON.stringify(init.body);
      headers.set('content-type', 'application/json');
    }
    return fetch(`${emulator.url}${path}`, { ...init, headers, body });
  };
  return {
    url: emulator.url,
    call,
    async exec(sandboxId, body, headers = {}) {
      const response = await call(`/v1/sandbox/${sandboxId}/exec`, { method: 'POST', body, headers });
      return { status: response.status, type: response.headers.get('content-type'), events: parseSse(await response.text()) };
    },
  };
}

/** A fresh valid sandbox id (lowercase letters and 2-7). */
export function freshId(prefix: string): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz234567';
  let suffix = '';
  for (let index = 0; index < 10; index++) suffix += letters[Math.floor(Math.random() * letters.length)];
  return `${prefix}${suffix}`;
}
