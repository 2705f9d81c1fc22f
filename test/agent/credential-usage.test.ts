import { describe, expect, it } from 'vitest';
import { ReplyUsageReader, totalTokens } from '../../src/agent/credential-usage.js';

const encoder = new TextEncoder();

function streamed(events: unknown[]): string {
  return events.map((event) => `event: ${(event as { type: string }).type}\ndata: ${JSON.stringify(event)}\n\n`).join('');
}

/** Feeds `text` in pieces of `size` bytes (cutting lines and multi-byte characters anywhere). */
function read(contentType: string, text: string, size: number): ReplyUsageReader {
  const reader = new ReplyUsageReader(contentType);
  const bytes = encoder.encode(text);
  for (let offset = 0; offset < bytes.length; offset += size) reader.push(bytes.subarray(offset, offset + size));
  reader.end();
  return reader;
}

describe('ReplyUsageReader', () => {
  const sse = streamed([
    {
      type: 'message_start',
      message: {
        model: 'claude-x',
        usage: { input_tokens: 120, output_tokens: 1, cache_creation_input_tokens: 30, cache_read_input_tokens: 7 },
      },
    },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'héllo "usage" wörld' } },
    { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 42 } },
    { type: 'message_stop' },
  ]);

  it('takes the usage of a streamed reply, later counts replacing earlier ones, however the chunks fall', () => {
    for (const size of [1, 3, 17, 4096]) {
      const reader = read('text/event-stream; charset=utf-8', sse, size);
      expect(reader.usage, `chunks of ${size}`).toEqual({
        inputTokens: 120,
        outputTokens: 42,
        cacheCreationInputTokens: 30,
        cacheReadInputTokens: 7,
      });
      expect(reader.model).toBe('claude-x');
      expect(totalTokens(reader.usage)).toBe(199);
    }
  });

  it('takes the usage of a JSON reply', () => {
    const reader = read('application/json', JSON.stringify({ model: 'claude-y', usage: { input_tokens: 5, output_tokens: 6 } }), 4);
    expect(reader.usage).toEqual({ inputTokens: 5, outputTokens: 6, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 });
    expect(reader.model).toBe('claude-y');
  });

  it('skips lines too long to be usage, and ignores values that are not counts', () => {
    const long = `data: {"type":"message_delta","usage":{"output_tokens":9},"pad":"${'x'.repeat(100 * 1024)}"}\n\n`;
    const bad = streamed([{ type: 'message_start', message: { usage: { input_tokens: -1, output_tokens: 'many' } } }]);
    const reader = read('text/event-stream', `${long}${bad}${streamed([{ type: 'message_delta', usage: { output_tokens: 3 } }])}`, 1000);
    expect(reader.usage).toEqual({ inputTokens: 0, outputTokens: 3, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 });
  });
});
