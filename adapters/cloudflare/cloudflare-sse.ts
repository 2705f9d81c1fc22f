/**
 * Server-sent events as the bridge writes them: `event: <name>` and `data: <payload>` lines, one
 * blank line per event, a payload split over several `data:` lines rejoined with `\n`. No `id:`
 * or `retry:` (ignored if present), comments (`:`) skipped. Text is decoded with one streaming
 * decoder per stream, so a multibyte character split between network chunks is kept whole.
 */

/** One event: its name (`message` when it had no `event:` line) and its data. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/** An incremental parser: feed it text, take the complete events. */
export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #hasData = false;

  /** Takes more text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.#buffer += text;
    const events: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      // A lone `\r` at the end may be the first half of `\r\n`: wait for the next chunk.
      if (!match || (match[0] === '\r' && match.index === this.#buffer.length - 1)) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /** The stream ended: an event without its blank line still counts (the bridge closes right after its last). */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.#buffer !== '') {
      const event = this.#line(this.#buffer);
      this.#buffer = '';
      if (event) events.push(event);
    }
    const last = this.#dispatch();
    if (last) events.push(last);
    return events;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') {
      this.#data.push(value);
      this.#hasData = true;
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    const event = this.#hasData ? { event: this.#event || 'message', data: this.#data.join('\n') } : undefined;
    this.#event = '';
    this.#data = [];
    this.#hasData = false;
    return event;
  }
}

/** The events of an SSE body, in order; cancelling the iteration cancels the body. */
export async function* readSseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let finished = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        finished = true;
        yield* parser.push(decoder.decode());
        yield* parser.end();
        return;
      }
      yield* parser.push(decoder.decode(next.value, { stream: true }));
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
