/**
 * A streaming `multipart/form-data` reader for envd's uploads: parts come one at a time and
 * each part's body streams as the client sends it, so an upload of any size holds at most one
 * chunk and a delimiter's length in memory. A part's body must be read to its end (or the whole
 * request given up) before the next part comes.
 */

/** A malformed body; envd answers 500 "error reading form". */
export class MultipartError extends Error {}

export interface MultipartPart {
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The form field's name (`Content-Disposition: form-data; name=...`). */
  readonly name: string | undefined;
  /** The `filename` parameter as sent, with any directories in it. */
  readonly filename: string | undefined;
  readonly body: AsyncIterable<Buffer>;
}

const maxHeaderBytes = 64 * 1024;
const crlf = Buffer.from('\r\n');
const headerEnd = Buffer.from('\r\n\r\n');

/** The boundary of a `multipart/*` content type, or undefined. */
export function multipartBoundary(contentType: string): string | undefined {
  const parameters = parseHeaderParameters(contentType);
  const boundary = parameters.parameters.boundary;
  return parameters.value.startsWith('multipart/') && boundary ? boundary : undefined;
}

/** `form-data; name="file"; filename="a b.txt"`: the value and its parameters (names in lower case). */
export function parseHeaderParameters(header: string): { value: string; parameters: Record<string, string> } {
  const semicolon = header.indexOf(';');
  const value = (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase();
  const parameters: Record<string, string> = {};
  let rest = semicolon === -1 ? '' : header.slice(semicolon + 1);
  const pattern = /^\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))\s*(?:;|$)/;
  for (let match = pattern.exec(rest); match && rest.length > 0; match = pattern.exec(rest)) {
    const quoted = match[2];
    parameters[match[1]!.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : match[3]!.trim();
    rest = rest.slice(match[0].length);
  }
  return { value, parameters };
}

/** The parts of a multipart body, in order. Throws `MultipartError` for a malformed or truncated body. */
export async function* multipartParts(source: AsyncIterable<Uint8Array>, boundary: string): AsyncGenerator<MultipartPart> {
  const reader = new DelimitedReader(source, Buffer.from(`\r\n--${boundary}`));
  // The first delimiter may open the body without a line break before it.
  reader.prepend(crlf);
  await reader.skipPreamble();
  for (;;) {
    if (await reader.atCloseDelimiter()) return;
    await reader.skipLine();
    const headers = parseHeaders(await reader.readHeaders());
    const disposition = parseHeaderParameters(headers['content-disposition'] ?? '');
    const part: MultipartPart = {
      headers,
      name: disposition.parameters.name,
      filename: disposition.parameters.filename,
      body: { [Symbol.asyncIterator]: () => reader.bodyChunks() },
    };
    yield part;
    await reader.skipRestOfBody();
  }
}

function parseHeaders(block: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.toString('utf8').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The body as a buffer that is refilled on demand, cut at a delimiter. */
class DelimitedReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  #buffer: Buffer = Buffer.alloc(0);
  #ended = false;
  /** Whether the current part's body has been read to its delimiter. */
  #bodyDone = true;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly delimiter: Buffer,
  ) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  prepend(bytes: Buffer): void {
    this.#buffer = Buffer.concat([bytes, this.#buffer]);
  }

  async skipPreamble(): Promise<void> {
    for (;;) {
      const at = this.#buffer.indexOf(this.delimiter);
      if (at !== -1) {
        this.#buffer = this.#buffer.subarray(at + this.delimiter.length);
        return;
      }
      this.#buffer = this.#buffer.subarray(Math.max(0, this.#buffer.length - this.delimiter.length));
      if (!(await this.#more())) throw new MultipartError('multipart: NextPart: EOF');
    }
  }

  /** After a delimiter: `--` ends the body. */
  async atCloseDelimiter(): Promise<boolean> {
    while (this.#buffer.length < 2) if (!(await this.#more())) throw new MultipartError('multipart: NextPart: EOF');
    return this.#buffer[0] === 0x2d && this.#buffer[1] === 0x2d;
  }

  /** The rest of the delimiter line (transport padding, then CRLF). */
  async skipLine(): Promise<void> {
    for (;;) {
      const at = this.#buffer.indexOf(crlf);
      if (at !== -1) {
        if (this.#buffer.subarray(0, at).some((byte) => byte !== 0x20 && byte !== 0x09)) {
          throw new MultipartError('multipart: expected a line break after the boundary');
        }
        this.#buffer = this.#buffer.subarray(at + 2);
        return;
      }
      if (this.#buffer.length > 1024) throw new MultipartError('multipart: boundary line too long');
      if (!(await this.#more())) throw new MultipartError('multipart: NextPart: EOF');
    }
  }

  async readHeaders(): Promise<Buffer> {
    for (;;) {
      // A part without headers: its body starts right after the delimiter line.
      if (this.#buffer.length >= 2 && this.#buffer[0] === 0x0d && this.#buffer[1] === 0x0a) {
        this.#buffer = this.#buffer.subarray(2);
        this.#bodyDone = false;
        return Buffer.alloc(0);
      }
      const at = this.#buffer.indexOf(headerEnd);
      if (at !== -1) {
        const block = this.#buffer.subarray(0, at);
        this.#buffer = this.#buffer.subarray(at + headerEnd.length);
        this.#bodyDone = false;
        return block;
      }
      if (this.#buffer.length > maxHeaderBytes) throw new MultipartError('multipart: part headers too large');
      if (!(await this.#more())) throw new MultipartError('multipart: NextPart: EOF');
    }
  }

  async *bodyChunks(): AsyncGenerator<Buffer> {
    for (let chunk = await this.#nextBodyChunk(); chunk; chunk = await this.#nextBodyChunk()) yield chunk;
  }

  async skipRestOfBody(): Promise<void> {
    while (await this.#nextBodyChunk());
  }

  /** The next piece of the current body, or undefined at its delimiter. */
  async #nextBodyChunk(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#bodyDone) return undefined;
      const at = this.#buffer.indexOf(this.delimiter);
      if (at !== -1) {
        const chunk = this.#buffer.subarray(0, at);
        this.#buffer = this.#buffer.subarray(at + this.delimiter.length);
        this.#bodyDone = true;
        return chunk.length > 0 ? chunk : undefined;
      }
      // Everything but a possible delimiter's start is body.
      const safe = this.#buffer.length - (this.delimiter.length - 1);
      if (safe > 0) {
        const chunk = this.#buffer.subarray(0, safe);
        this.#buffer = this.#buffer.subarray(safe);
        return chunk;
      }
      if (!(await this.#more())) throw new MultipartError('multipart: NextPart: EOF');
    }
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.#iterator.next();
    if (next.done) {
      this.#ended = true;
      return false;
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    return true;
  }
}
