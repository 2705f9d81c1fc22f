/**
 * Unit tests of AgentSession's message handling without a CLI or a real sandbox: a fake
 * `Sandbox` whose exec replays NDJSON recorded from the real CLI (test/agent/record-fixture.ts).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { AgentSession, AgentSessionError } from '../../src/agent/index.js';
import type { ExecResult, Sandbox, SandboxProcess } from '../../src/index.js';

const recorded = readFileSync(new URL('./fixtures/three-turns.ndjson', import.meta.url), 'utf8')
  .trim()
  .split('\n');

/** The recorded lines, cut into turns at each `result`. */
function turnsOf(lines: string[]): string[][] {
  const turns: string[][] = [[]];
  for (const line of lines) {
    turns.at(-1)!.push(line);
    if (JSON.parse(line).type === 'result') turns.push([]);
  }
  return turns.filter((turn) => turn.length > 0);
}

interface ReplayScript {
  turns: string[][];
  /** After this many turns, the next user message makes the process die with this code and stderr. */
  crash?: { afterTurns: number; exitCode: number; stderr: string };
}

function replaySandbox(script: ReplayScript): Sandbox & { execs: string[][]; stdinLines: unknown[] } {
  const encoder = new TextEncoder();
  const execs: string[][] = [];
  const stdinLines: unknown[] = [];
  const exec = async (command: string | readonly string[]): Promise<SandboxProcess> => {
    const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
    execs.push(argv);
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let err!: ReadableStreamDefaultController<Uint8Array>;
    let exit!: (code: number) => void;
    const exited = new Promise<number>((resolve) => (exit = resolve));
    const stdout = new ReadableStream<Uint8Array>({ start: (controller) => void (out = controller) });
    const stderr = new ReadableStream<Uint8Array>({ start: (controller) => void (err = controller) });
    const end = (code: number) => {
      try {
        out.close();
        err.close();
      } catch {
        // already closed
      }
      exit(code);
    };
    let turn = 0;
    let buffered = '';
    const stdin = new WritableStream<Uint8Array>({
      write(chunk) {
        buffered += new TextDecoder().decode(chunk);
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (!line.trim()) continue;
          const message = JSON.parse(line);
          stdinLines.push(message);
          if (message.type === 'control_request' && message.request.subtype === 'initialize') {
            out.enqueue(
              encoder.encode(
                `${JSON.stringify({ type: 'control_response', response: { subtype: 'success', request_id: message.request_id, response: { commands: [], models: [], claude_code_version: '2.1.330' } } })}\n`,
              ),
            );
          } else if (message.type === 'user') {
            if (script.crash && turn === script.crash.afterTurns) {
              err.enqueue(encoder.encode(script.crash.stderr));
              end(script.crash.exitCode);
              return;
            }
            for (const recordedLine of script.turns[turn++] ?? []) out.enqueue(encoder.encode(`${recordedLine}\n`));
          }
        }
      },
      close: () => end(0),
    });
    return {
      stdin,
      stdout,
      stderr,
      wait: async () => ({ exitCode: await exited, signal: undefined }),
      kill: async () => end(137),
      [Symbol.asyncDispose]: async () => end(137),
    };
  };
  const sandbox = {
    id: 'replay-1',
    provider: 'replay',
    name: undefined,
    warnings: [],
    execs,
    stdinLines,
    exec,
    // Only the directory preparation runs buffered commands.
    run: async (): Promise<ExecResult> => ({ exitCode: 0, signal: undefined, stdout: '/replay\n', stderr: '', truncated: false }),
  };
  return sandbox as unknown as Sandbox & { execs: string[][]; stdinLines: unknown[] };
}

describe('AgentSession message handling (recorded NDJSON replay)', () => {
  it('routes each turn its messages, ends it on result, and computes per-turn and cumulative cost', async () => {
    const sandbox = replaySandbox({ turns: turnsOf(recorded) });
    const agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const allTypes: string[] = [];
    agent.events.on('message', (message) => allTypes.push(message.type));
    const first = agent.send('hello replay');
    const types: string[] = [];
    for await (const message of first) types.push(message.type);
    expect(types).toEqual(['system', 'assistant', 'result']);
    const one = await first.result;
    expect(one.text).toBe('Echo: hello replay');
    const two = await agent.send('BASH: echo replayed').result;
    expect(two.text).toBe('Tool said: replayed');
    expect(two.numTurns).toBe(2);
    const totals = turnsOf(recorded).map((turn) => JSON.parse(turn.at(-1)!).total_cost_usd as number);
    expect(one.costUsd).toBeCloseTo(totals[0]!, 12);
    expect(two.costUsd).toBeCloseTo(totals[1]! - totals[0]!, 12);
    expect(two.totalCostUsd).toBeCloseTo(totals[1]!, 12);
    const three = await agent.send('STATUS: 401').result;
    expect(three.isError).toBe(true);
    expect(three.error?.reason).toBe('api-error');
    expect(three.error?.apiErrorStatus).toBe(401);
    expect(agent.usage.turns).toBe(3);
    expect(allTypes.filter((type) => type === 'result')).toHaveLength(3);
    await agent.close();
    // The CLI was started once, with the executable and the stream-json flags, and got each prompt as a user line.
    const cli = sandbox.execs.find((argv) => argv[0] === '/opt/claude')!;
    expect(cli).toEqual(
      expect.arrayContaining([
        '--input-format',
        'stream-json',
        '--output-format',
        'stream-json',
        '--max-turns=50',
        '--permission-mode=bypassPermissions',
      ]),
    );
    expect(sandbox.execs.filter((argv) => argv[0] === '/opt/claude')).toHaveLength(1);
    const prompts = sandbox.stdinLines.filter((line: any) => line.type === 'user').map((line: any) => line.message.content);
    expect(prompts).toEqual(['hello replay', 'BASH: echo replayed', 'STATUS: 401']);
  });

  it('queues a send made during a turn and runs it after', async () => {
    const sandbox = replaySandbox({ turns: turnsOf(recorded) });
    await using agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const [one, two] = await Promise.all([agent.send('hello replay').result, agent.send('BASH: echo replayed').result]);
    expect(one.text).toBe('Echo: hello replay');
    expect(two.text).toBe('Tool said: replayed');
  });

  it('turns a process that dies mid-turn into a typed error with exit code and stderr, and fails later sends', async () => {
    const sandbox = replaySandbox({
      turns: turnsOf(recorded),
      crash: { afterTurns: 1, exitCode: 3, stderr: 'line one\nFATAL: replayed crash\n' },
    });
    const agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const errors: unknown[] = [];
    agent.events.on('error', (error) => errors.push(error));
    expect((await agent.send('hello replay').result).isError).toBe(false);
    const error = await agent.send('BASH: echo replayed').result.catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ reason: 'process-exited', exitCode: 3 });
    expect((error as AgentSessionError).stderrTail).toContain('FATAL: replayed crash');
    expect((error as AgentSessionError).message).toContain('FATAL: replayed crash');
    const later = await agent.send('anything').result.catch((caught: unknown) => caught);
    expect((later as AgentSessionError).reason).toBe('process-exited');
    expect(agent.isOpen).toBe(false);
    await agent.close();
  });

  it('rejects a turn whose signal aborts with the signal reason', async () => {
    const sandbox = replaySandbox({ turns: [] });
    await using agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    const turn = agent.send('never answered', { signal: controller.signal });
    controller.abort(reason);
    await expect(turn.result).rejects.toBe(reason);
  });

  it('rejects a queued turn at once when its signal aborts, before its turn would start', async () => {
    const sandbox = replaySandbox({ turns: [] });
    await using agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const started: number[] = [];
    agent.events.on('turn-start', ({ turn }) => started.push(turn));
    agent.send('never answered');
    const controller = new AbortController();
    const reason = new Error('caller gave up while queued');
    const queued = agent.send('queued', { signal: controller.signal });
    controller.abort(reason);
    await expect(queued.result).rejects.toBe(reason);
    expect(started).toEqual([1]);
    const users = sandbox.stdinLines.filter((line) => (line as { type: string }).type === 'user');
    expect(users.map((line) => (line as { message: { content: unknown } }).message.content)).toEqual(['never answered']);
  });

  it('rejects a turn cut short by close with reason closed', async () => {
    const sandbox = replaySandbox({ turns: [] });
    const agent = await AgentSession.start(sandbox, { executable: '/opt/claude', closeGraceMs: 100 });
    const turn = agent.send('never answered');
    await agent.close();
    await expect(turn.result).rejects.toMatchObject({ reason: 'closed' });
    await agent.close();
    await expect(agent.send('after close').result).rejects.toMatchObject({ reason: 'closed' });
  });

  it('validates options before any I/O', async () => {
    const sandbox = replaySandbox({ turns: [] });
    await expect(AgentSession.start(sandbox, { maxTurns: 0 })).rejects.toMatchObject({ code: 'invalid_argument', argument: 'maxTurns' });
    await expect(AgentSession.start(sandbox, { cwd: 'relative' })).rejects.toMatchObject({ code: 'invalid_argument', argument: 'cwd' });
    expect(sandbox.execs).toEqual([]);
  });
});
