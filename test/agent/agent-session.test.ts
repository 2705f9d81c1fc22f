import { expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { AgentSession, AgentSessionError, type AgentMessage } from '../../src/agent/index.js';
import { SandboxTimeoutError } from '../../src/index.js';
import { describeWithAgentHarness } from './harness.js';

describeWithAgentHarness('AgentSession with the real CLI in the local sandbox', { sandbox: true }, (harness) => {
  it('runs a text turn and streams typed messages', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/text' }));
    const seen: AgentMessage[] = [];
    agent.events.on('message', (message) => seen.push(message));
    const turn = agent.send('hello sandbox');
    const types: string[] = [];
    for await (const message of turn) types.push(message.type);
    const result = await turn.result;
    expect(result.text).toBe('Echo: hello sandbox');
    expect(result.isError).toBe(false);
    expect(result.error).toBeUndefined();
    expect(types).toContain('assistant');
    expect(types.at(-1)).toBe('result');
    expect(seen.map((message) => message.type)).toEqual(expect.arrayContaining(types));
    expect(result.costUsd).toBeGreaterThan(0);
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(agent.sessionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('runs two turns in one CLI process with per-turn and cumulative cost', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/two' }));
    const spawned: number[] = [];
    agent.events.on('exit', () => spawned.push(1));
    const first = await agent.send('first').result;
    const second = await agent.send('second').result;
    expect(first.text).toBe('Echo: first');
    expect(second.text).toBe('Echo: second');
    expect(second.sessionId).toBe(first.sessionId);
    expect(spawned).toEqual([]);
    expect(second.totalCostUsd).toBeCloseTo(first.costUsd + second.costUsd, 10);
    expect(agent.usage.turns).toBe(2);
    expect(agent.usage.totalCostUsd).toBeCloseTo(second.totalCostUsd, 10);
  });

  it('runs Bash inside the sandbox: the file exists there and not on the host', async () => {
    const path = `/tmp/made-by-agent-${Date.now()}`;
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/bash' }));
    const result = await agent.send(`BASH: echo inside > ${path} && cat ${path}`).result;
    expect(result.text).toBe('Tool said: inside');
    expect((await harness.sandbox.files.readText(path)).trim()).toBe('inside');
    expect(existsSync(path)).toBe(false);
  });

  it('runs a Write tool call', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/write' }));
    const result = await agent.send('WRITE: /workspace/write/note.txt written by the agent').result;
    expect(result.isError).toBe(false);
    expect(await harness.sandbox.files.readText('/workspace/write/note.txt')).toBe('written by the agent');
  });

  it('asks the permission callback: allow runs the tool, deny reaches the model', async () => {
    const asked: string[] = [];
    await using agent = await AgentSession.start(
      harness.sandbox,
      harness.agentOptions({
        cwd: '/workspace/perm',
        canUseTool: async ({ toolName, input }) => {
          asked.push(toolName);
          return String(input.file_path).includes('allowed')
            ? { behavior: 'allow' }
            : { behavior: 'deny', message: 'NOPE: writes to that file are not allowed' };
        },
      }),
    );
    const allowed = await agent.send('WRITE: /workspace/perm/allowed.txt yes').result;
    expect(allowed.isError).toBe(false);
    expect(await harness.sandbox.files.readText('/workspace/perm/allowed.txt')).toBe('yes');
    const denied = await agent.send('WRITE: /workspace/perm/denied.txt no').result;
    expect(denied.text).toContain('NOPE: writes to that file are not allowed');
    expect(denied.permissionDenials.map((denial) => denial.toolName)).toEqual(['Write']);
    expect(await harness.sandbox.files.exists('/workspace/perm/denied.txt')).toBe(false);
    expect(asked).toEqual(['Write', 'Write']);
    const lastRequest = harness.fake.requests.at(-1)!.body;
    const toolResult = lastRequest.messages.at(-1).content.find((block: any) => block.type === 'tool_result');
    expect(toolResult.is_error).toBe(true);
  });

  it('interrupts a running turn, and the session stays usable', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/interrupt' }));
    const turn = agent.send('SLOW please');
    for await (const message of turn) {
      if (message.type === 'system') {
        await agent.interrupt();
        break;
      }
    }
    const result = await turn.result;
    expect(result.isError).toBe(true);
    expect(result.error?.reason).toBe('interrupted');
    expect((await agent.send('after interrupt').result).text).toBe('Echo: after interrupt');
  });

  it('stops at maxTurns', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/max', maxTurns: 2 }));
    const result = await agent.send('LOOP forever').result;
    expect(result.isError).toBe(true);
    expect(result.error).toBeInstanceOf(AgentSessionError);
    expect(result.error?.reason).toBe('max-turns');
  });

  it('reports API errors 401 and 500 as typed error results', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/api' }));
    const unauthorized = await agent.send('STATUS: 401').result;
    expect(unauthorized.isError).toBe(true);
    expect(unauthorized.error?.reason).toBe('api-error');
    expect(unauthorized.error?.apiErrorStatus).toBe(401);
    const failed = await agent.send('STATUS: 500').result;
    expect(failed.error?.reason).toBe('api-error');
    expect(failed.error?.apiErrorStatus).toBe(500);
    expect(failed.error?.retryable).toBe(true);
  });

  it('times out a turn with SandboxTimeoutError and keeps the session usable', async () => {
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/timeout' }));
    const error = await agent.send('SLOW please', { timeoutMs: 1_500 }).result.catch((caught: unknown) => caught);
    expect(SandboxTimeoutError.isInstance(error)).toBe(true);
    expect((await agent.send('still there').result).text).toBe('Echo: still there');
  });

  it('gives a typed error with exit code and stderr when the CLI crashes mid-turn', async () => {
    const agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/crash' }));
    const turn = agent.send('SLOW please');
    await new Promise<void>((resolve) => agent.events.once('message', () => resolve()));
    // Only this test's agent runs now; the bracket keeps pkill's own shell out of the match.
    await harness.sandbox.run(['pkill', '-9', '-f', '^[/]sandport/claude-code/claude']);
    const error = await turn.result.catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(error)).toBe(true);
    expect((error as AgentSessionError).reason).toBe('process-exited');
    expect((error as AgentSessionError).exitCode).toBe(137);
    const after = await agent.send('too late').result.catch((caught: unknown) => caught);
    expect((after as AgentSessionError).reason).toBe('process-exited');
    await agent.close();
  });
});
