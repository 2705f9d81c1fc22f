/**
 * Token usage read from Messages API replies as they stream through the credential proxy, so a
 * per-sandbox token or spend budget can be enforced without buffering a reply. A streamed reply
 * (`text/event-stream`) carries `usage` in `message_start` (input and cache tokens, a first
 * output count) and in `message_delta` (the running output count, sometimes input counts too);
 * a later value of a field replaces an earlier one. A plain JSON reply carries one `usage`.
 */

/** Tokens one reply used, as the API reported them. */
export interface MessageUsage {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
}

/** `usage` fields of the API and where they go. */
const fields = {
  input_tokens: 'inputTokens',
  output_tokens: 'outputTokens',
  cache_creation_input_tokens: 'cacheCreationInputTokens',
  cache_read_input_tokens: 'cacheReadInputTokens',
} as const satisfies Record<string, keyof MessageUsage>;

/** A `data:` line longer than this is not parsed (a content delta; usage lines are short). */
const maxParsedLineBytes = 64 * 1024;

export function emptyUsage(): MessageUsage {
  return { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 };
}

/** All tokens of a usage, the unit of the token budget. */
export function totalTokens(usage: MessageUsage): number {
  return usage.inputTokens + usage.outputTokens + usage.cacheCreationInputTokens + usage.cacheReadInputTokens;
}

/** Copies the numeric `usage` fields of an API object into `into` (later values replace earlier ones). */
function mergeUsage(into: MessageUsage, usage: unknown): void {
  if (typeof usage !== 'object' || usage === null) return;
  for (const [wire, name] of Object.entries(fields)) {
    const value = (usage as Record<string, unknown>)[wire];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) into[name] = value;
  }
}

/**
 * Collects the usage and model of one reply from its body chunks. `push` every chunk in order,
 * then read `usage` and `model`. Memory is bounded: only the current line is kept, and a line
 * longer than 64 KiB is skipped.
 */
export class ReplyUsageReader {
  readonly usage = emptyUsage();
  /** The model that answered, from the reply (`message_start.message.model` or the JSON's `model`). */
  model: string | undefined;
  private readonly streamed: boolean;
  private readonly decoder = new TextDecoder();
  private line = '';
  private skipping = false;
  private readonly json: string[] = [];
  private jsonBytes = 0;

  constructor(contentType: string | undefined) {
    this.streamed = (contentType ?? '').includes('text/event-stream');
  }

  push(chunk: Uint8Array): void {
    const text = this.decoder.decode(chunk, { stream: true });
    if (!this.streamed) {
      // A JSON reply is parsed whole; one larger than the cap reports no usage.
      this.jsonBytes += chunk.byteLength;
      if (this.jsonBytes <= 16 * maxParsedLineBytes) this.json.push(text);
      return;
    }
    let start = 0;
    for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n', start)) {
      this.take(text.slice(start, newline));
      start = newline + 1;
      this.finishLine();
    }
    this.take(text.slice(start));
  }

  /** Call once after the last chunk. */
  end(): void {
    if (this.streamed) {
      this.finishLine();
      return;
    }
    if (this.jsonBytes > 16 * maxParsedLineBytes) return;
    const parsed = safeParse(this.json.join('') + this.decoder.decode());
    if (typeof parsed === 'object' && parsed !== null) {
      mergeUsage(this.usage, (parsed as { usage?: unknown }).usage);
      const model = (parsed as { model?: unknown }).model;
      if (typeof model === 'string') this.model = model;
    }
  }

  private take(piece: string): void {
    if (this.skipping) return;
    if (this.line.length + piece.length > maxParsedLineBytes) {
      this.skipping = true;
      this.line = '';
      return;
    }
    this.line += piece;
  }

  private finishLine(): void {
    const line = this.line.replace(/\r$/, '');
    this.line = '';
    const skipped = this.skipping;
    this.skipping = false;
    if (skipped || !line.startsWith('data:') || !line.includes('"usage"')) return;
    const event = safeParse(line.slice(5).trim()) as
      | { type?: unknown; message?: { usage?: unknown; model?: unknown }; usage?: unknown }
      | undefined;
    if (event?.type === 'message_start') {
      mergeUsage(this.usage, event.message?.usage);
      if (typeof event.message?.model === 'string') this.model = event.message.model;
    } else if (event?.type === 'message_delta') {
      mergeUsage(this.usage, event.usage);
    }
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
