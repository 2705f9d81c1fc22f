/**
 * The Vercel log reader's pure parts: NDJSON split into lines as the consumer asks for them, and
 * each line parsed or refused by name. The whole reader runs against the emulator in vercel.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { VercelLogStreamError, ndjsonLines, parseVercelLogLine } from '../../adapters/vercel/vercel-logs.js';

/** A byte stream of `pieces` that counts how many were pulled from it. */
function counted(pieces: Uint8Array[]) {
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const next = pieces[pulled++];
        if (next === undefined) controller.close();
        else controller.enqueue(next);
      },
      cancel() {
        cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled, cancelled: () => cancelled };
}

const bytes = (text: string) => new TextEncoder().encode(text);

describe('ndjsonLines', () => {
  it('reads the stream only as lines are asked for', async () => {
    const source = counted([bytes('{"a":1}\n'), bytes('{"a":2}\n'), bytes('{"a":3}\n')]);
    const lines = ndjsonLines(source.stream);
    expect((await lines.next()).value).toBe('{"a":1}');
    expect(source.pulled()).toBe(1);
    expect((await lines.next()).value).toBe('{"a":2}');
    expect(source.pulled()).toBe(2);
  });

  it('joins a line split across reads, a character split across reads, and a last line without a newline', async () => {
    const euro = bytes('€');
    const source = counted([bytes('{"d":"a'), euro.subarray(0, 1), euro.subarray(1), bytes('"}\n\n{"d":"b"}')]);
    const all: string[] = [];
    for await (const line of ndjsonLines(source.stream)) all.push(line);
    expect(all).toEqual(['{"d":"a€"}', '{"d":"b"}']);
  });

  it('lets the connection go when the consumer stops early', async () => {
    const source = counted([bytes('{"a":1}\n{"a":2}\n'), bytes('{"a":3}\n')]);
    for await (const _line of ndjsonLines(source.stream)) break;
    expect(source.cancelled()).toBe(true);
  });
});

describe('parseVercelLogLine', () => {
  it('parses output lines', () => {
    expect(parseVercelLogLine('{"stream":"stdout","data":"hi\\n"}', 'sess')).toEqual({ stream: 'stdout', data: 'hi\n' });
    expect(parseVercelLogLine('{"stream":"stderr","data":""}', 'sess')).toEqual({ stream: 'stderr', data: '' });
  });

  it("throws an error line as the SDK's StreamError shape (code and session id)", () => {
    let thrown: unknown;
    try {
      parseVercelLogLine('{"stream":"error","data":{"code":"sandbox_stopped","message":"the sandbox stopped"}}', 'sess_1');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(VercelLogStreamError);
    expect(thrown).toMatchObject({ name: 'StreamError', code: 'sandbox_stopped', sessionId: 'sess_1', message: 'the sandbox stopped' });
  });

  it('refuses a line that is not JSON, and one of an unknown shape, naming it', () => {
    expect(() => parseVercelLogLine('not json', 's')).toThrow(/not JSON: not json/);
    expect(() => parseVercelLogLine('{"stream":"stdin","data":"x"}', 's')).toThrow(/unknown shape/);
  });
});
