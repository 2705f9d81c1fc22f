/**
 * A scripted fake of the Anthropic Messages API for tests: enough of `POST /v1/messages`
 * (streamed SSE) for the real `claude` CLI to run turns and tools against it.
 *
 * The reply is chosen from directives in the latest user prompt text:
 * - `BASH: <command>`        a Bash tool_use; after its result, text `Tool said: <result>`
 * - `WRITE: <path> <text>`   a Write tool_use
 * - `TOOL: <name> <json>`    any tool_use (for MCP tools: `mcp__<server>__<tool>`)
 * - `LOOP`                   a Bash tool_use on every request (for max-turns tests)
 * - `SLOW`                   a text reply streamed over ~30 s (for interrupt / crash tests)
 * - `STATUS: <code>`         an HTTP error with that status
 * - anything else            text `Echo: <prompt>`
 * A test can also pass `scripts`: a turn whose prompt matches one is answered step by step
 * (tool uses the CLI runs for real, then a closing text), before the directives above.
 *
 * It listens on loopback TCP, and optionally on a unix socket (for sandboxes, which reach the
 * host only through a deliberately forwarded socket).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
}

export interface FakeAnthropic {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly socketPath: string | undefined;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

interface Block {
  type: 'text' | 'tool_use';
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

/** One model call of a scripted turn: a tool use the CLI runs, or the turn's closing text. */
export type FakeStep = { tool: string; input: Record<string, unknown> } | { text: string };

/**
 * A scripted turn: when the latest prompt matches `prompt`, the turn's n-th model call is
 * answered with `steps[n]` (a function gets the conversation so far, e.g. to answer from an
 * earlier turn); past the last step the answer is the text `Done.`.
 */
export interface FakeScript {
  prompt: RegExp;
  steps: ReadonlyArray<FakeStep | ((messages: any[]) => FakeStep)>;
}

let toolIds = 0;

export async function startFakeAnthropic(options: { socketPath?: string; scripts?: readonly FakeScript[] } = {}): Promise<FakeAnthropic> {
  const requests: RecordedRequest[] = [];
  const scripts = options.scripts ?? [];
  const handler = (request: IncomingMessage, response: ServerResponse) => void handle(request, response, requests, scripts);
  const tcp = createServer(handler);
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const servers: Server[] = [tcp];
  if (options.socketPath) {
    await rm(options.socketPath, { force: true });
    const unix = createServer(handler);
    await new Promise<void>((resolve) => unix.listen(options.socketPath, resolve));
    // The sandbox's forwarder connects as the sandbox's unprivileged host uid.
    await chmod(options.socketPath, 0o666);
    servers.push(unix);
  }
  const { port } = tcp.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    socketPath: options.socketPath,
    requests,
    async close() {
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  requests: RecordedRequest[],
  scripts: readonly FakeScript[] = [],
): Promise<void> {
  let raw = '';
  request.setEncoding('utf8');
  for await (const chunk of request) raw += chunk;
  let body: any;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    body = raw;
  }
  requests.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body });
  const path = (request.url ?? '').split('?')[0]!;
  if (request.method === 'POST' && path.endsWith('/v1/messages/count_tokens')) return json(response, 200, { input_tokens: 10 });
  if (request.method !== 'POST' || !path.endsWith('/v1/messages'))
    return json(response, 404, { type: 'error', error: { type: 'not_found_error', message: 'not found' } });

  const model = String(body?.model ?? 'claude-fake');
  // The session-title side call asks for JSON output.
  if (body?.output_config?.format?.type === 'json_schema')
    return reply(response, body, model, [{ type: 'text', text: '{"title":"Fake session"}' }], 'end_turn');

  const prompt = latestPrompt(body?.messages ?? []);
  const toolResult = latestToolResult(body?.messages ?? []);
  const status = /STATUS: (\d{3})/.exec(prompt);
  if (status) {
    const code = Number(status[1]);
    const type = code === 401 ? 'authentication_error' : code === 429 ? 'rate_limit_error' : 'api_error';
    return json(response, code, { type: 'error', error: { type, message: `fake ${code}` } });
  }
  const step = scriptedStep(body?.messages ?? [], prompt, scripts);
  if (step && 'text' in step) return reply(response, body, model, [{ type: 'text', text: step.text }], 'end_turn');
  if (step) return reply(response, body, model, [toolUse(step.tool, step.input)], 'tool_use');
  if (prompt.includes('LOOP')) return reply(response, body, model, [bashUse('echo loop')], 'tool_use');
  if (toolResult !== undefined) return reply(response, body, model, [{ type: 'text', text: `Tool said: ${toolResult}` }], 'end_turn');
  if (prompt.includes('SLOW')) return slow(response, model);
  const bash = /BASH: (.+)/.exec(prompt);
  if (bash) return reply(response, body, model, [{ type: 'text', text: 'Running it.' }, bashUse(bash[1]!.trim())], 'tool_use');
  const write = /WRITE: (\S+) (.+)/.exec(prompt);
  if (write) return reply(response, body, model, [toolUse('Write', { file_path: write[1], content: write[2] })], 'tool_use');
  const tool = /TOOL: (\S+) (\{.*\})/.exec(prompt);
  if (tool) return reply(response, body, model, [toolUse(tool[1]!, JSON.parse(tool[2]!))], 'tool_use');
  return reply(response, body, model, [{ type: 'text', text: `Echo: ${prompt.trim()}` }], 'end_turn');
}

/** The step of the first script matching `prompt`: the n-th, n being the model calls since the prompt. */
function scriptedStep(messages: any[], prompt: string, scripts: readonly FakeScript[]): FakeStep | undefined {
  const script = scripts.find((candidate) => candidate.prompt.test(prompt));
  if (!script) return undefined;
  let calls = 0;
  for (let index = messages.length - 1; index >= 0 && !isPromptMessage(messages[index]); index--) {
    if (messages[index]?.role === 'assistant') calls++;
  }
  const step = script.steps[calls];
  if (step === undefined) return { text: 'Done.' };
  return typeof step === 'function' ? step(messages) : step;
}

/** A user message that carries a prompt (text that is not a reminder), not a tool result. */
function isPromptMessage(message: any): boolean {
  if (message?.role !== 'user') return false;
  if (typeof message.content === 'string') return message.content.trim() !== '';
  const blocks: any[] = message.content ?? [];
  if (blocks.some((block) => block?.type === 'tool_result')) return false;
  return blocks.some(
    (block) => block?.type === 'text' && String(block.text).trim() && !String(block.text).trimStart().startsWith('<system-reminder>'),
  );
}

function bashUse(command: string): Block {
  return toolUse('Bash', { command, description: 'Run a command' });
}

function toolUse(name: string, input: unknown): Block {
  return { type: 'tool_use', id: `toolu_fake_${++toolIds}`, name, input };
}

/**
 * The latest prompt text: the last text block of the latest user message that has one, skipping
 * reminders and interrupt markers (the CLI merges consecutive user messages into one).
 */
function latestPrompt(messages: any[]): string {
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index];
    if (message?.role !== 'user') continue;
    const texts =
      typeof message.content === 'string'
        ? [message.content]
        : (message.content ?? []).filter((block: any) => block?.type === 'text').map((block: any) => String(block.text));
    const prompts = texts.filter(
      (text: string) => text.trim() && !text.trimStart().startsWith('<system-reminder>') && !text.startsWith('[Request interrupted'),
    );
    if (prompts.length > 0) return prompts.at(-1)!;
  }
  return '';
}

/** Content of a tool_result in the last message, when the last message carries one. */
function latestToolResult(messages: any[]): string | undefined {
  const last = messages.at(-1);
  if (last?.role !== 'user' || !Array.isArray(last.content)) return undefined;
  const result = last.content.find((block: any) => block?.type === 'tool_result');
  if (!result) return undefined;
  const content = result.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part: any) => part?.text ?? '').join('');
  return '';
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_fake_${Date.now()}` });
  response.end(JSON.stringify(body));
}

function startEvents(response: ServerResponse): (event: string, data: unknown) => void {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': `req_fake_${Date.now()}` });
  return (event, data) => response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function messageStart(model: string) {
  return {
    type: 'message_start',
    message: {
      id: `msg_fake_${Date.now()}_${Math.random().toString(36).slice(2, 8)}`,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    },
  };
}

function reply(response: ServerResponse, body: any, model: string, blocks: Block[], stopReason: string): void {
  if (body?.stream === false) {
    json(response, 200, {
      ...messageStart(model).message,
      content: blocks.map((block) =>
        block.type === 'text'
          ? { type: 'text', text: block.text }
          : { type: 'tool_use', id: block.id, name: block.name, input: block.input },
      ),
      stop_reason: stopReason,
    });
    return;
  }
  const send = startEvents(response);
  send('message_start', messageStart(model));
  blocks.forEach((block, index) => {
    if (block.type === 'text') {
      send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
      send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: block.text } });
    } else {
      send('content_block_start', {
        type: 'content_block_start',
        index,
        content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
      });
      send('content_block_delta', {
        type: 'content_block_delta',
        index,
        delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
      });
    }
    send('content_block_stop', { type: 'content_block_stop', index });
  });
  send('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: 5 } });
  send('message_stop', { type: 'message_stop' });
  response.end();
}

function slow(response: ServerResponse, model: string): void {
  const send = startEvents(response);
  send('message_start', messageStart(model));
  send('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  let count = 0;
  const timer = setInterval(() => {
    if (++count > 150 || response.destroyed) {
      clearInterval(timer);
      if (response.destroyed) return;
      send('content_block_stop', { type: 'content_block_stop', index: 0 });
      send('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: { output_tokens: 5 },
      });
      send('message_stop', { type: 'message_stop' });
      response.end();
      return;
    }
    send('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'slow ' } });
  }, 200);
  response.on('close', () => clearInterval(timer));
}
