import { expect, it } from 'vitest';
import { createSdkMcpServer, tool } from '@anthropic-ai/claude-agent-sdk';
import { z } from 'zod';
import { AgentSession, MemorySessionStore } from '../../src/agent/index.js';
import { describeWithAgentHarness } from './harness.js';

describeWithAgentHarness('several agents, host-side tools', { sandbox: true }, (harness) => {
  it('runs two agents at once in one sandbox without clobbering files or sessions', async () => {
    const store = new MemorySessionStore();
    const [red, blue] = await Promise.all([
      AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/red', store })),
      AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/blue', store })),
    ]);
    try {
      expect(red.configDir).not.toBe(blue.configDir);
      const [redWrite, blueWrite] = await Promise.all([
        red.send('WRITE: /workspace/red/owner.txt red').result,
        blue.send('WRITE: /workspace/blue/owner.txt blue').result,
      ]);
      expect(redWrite.isError || blueWrite.isError).toBe(false);
      const [redBash, blueBash] = await Promise.all([
        red.send('BASH: echo $(cat owner.txt) $(pwd)').result,
        blue.send('BASH: echo $(cat owner.txt) $(pwd)').result,
      ]);
      expect(redBash.text).toBe('Tool said: red /workspace/red');
      expect(blueBash.text).toBe('Tool said: blue /workspace/blue');
      expect(red.sessionId).not.toBe(blue.sessionId);
      await Promise.all([red.flush(), blue.flush()]);
      const redSaved = new TextDecoder().decode(
        (await store.load(red.sessionId!))!.files.find((file) => file.path.endsWith('.jsonl'))!.data,
      );
      const blueSaved = new TextDecoder().decode(
        (await store.load(blue.sessionId!))!.files.find((file) => file.path.endsWith('.jsonl'))!.data,
      );
      expect(redSaved).toContain('/workspace/red/owner.txt');
      expect(redSaved).not.toContain('/workspace/blue/owner.txt');
      expect(blueSaved).toContain('/workspace/blue/owner.txt');
      expect(blueSaved).not.toContain('/workspace/red/owner.txt');
    } finally {
      await Promise.all([red.close(), blue.close()]);
    }
  });

  it('lets the sandboxed agent call a tool defined in the host process (in-process MCP server)', async () => {
    const calls: Array<{ a: number; b: number }> = [];
    const host = createSdkMcpServer({
      name: 'host',
      tools: [
        tool('add', 'Adds two numbers on the host', { a: z.number(), b: z.number() }, async (args) => {
          calls.push(args);
          return { content: [{ type: 'text', text: `sum=${args.a + args.b} pid=${process.pid}` }] };
        }),
      ],
    });
    await using agent = await AgentSession.start(harness.sandbox, harness.agentOptions({ cwd: '/workspace/mcp', mcpServers: { host } }));
    const result = await agent.send('TOOL: mcp__host__add {"a":2,"b":3}').result;
    expect(calls).toEqual([{ a: 2, b: 3 }]);
    expect(result.text).toBe(`Tool said: sum=5 pid=${process.pid}`);
  });
});
