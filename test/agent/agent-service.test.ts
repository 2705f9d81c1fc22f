/**
 * The agent service (the hosting guide's long-running pattern): one agent host in one
 * long-lived local sandbox, several `claude` processes behind one port, reached over WebSocket
 * through the port's tunnel, with the fake Messages API behind the credential proxy.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  AgentSession,
  agentHostCloseCodes,
  CredentialProxy,
  claudeCodeHostMount,
  nodeHostMount,
  startAgentHost,
  type AgentHost,
  type AgentMessage,
} from '../../src/agent/index.js';
import { SandboxAuthenticationError } from '../../src/errors/index.js';
import type { Sandbox } from '../../src/index.js';
import { describeWithAgentHarness, testEnv } from './harness.js';

const hostPort = 7681;
const clientScript = join(import.meta.dirname, 'service', 'agent-service-client.ts');

describeWithAgentHarness('agent service: agents behind one port', {}, (harness) => {
  let proxy: CredentialProxy;
  let sandbox: Sandbox;
  let host: AgentHost;
  let url: string;
  const claude = claudeCodeHostMount();
  const node = nodeHostMount();

  beforeAll(async () => {
    proxy = await CredentialProxy.start({ apiKey: 'sk-ant-real-key-never-in-the-sandbox', baseUrl: harness.fake.url });
    sandbox = await harness.provider.create(
      proxy.createOptions(harness.provider, {
        network: 'block',
        ports: [hostPort],
        timeoutMs: 10 * 60_000,
        volumes: { ...claude.createOptions.volumes, ...node.createOptions.volumes },
      }),
    );
    host = await startAgentHost(sandbox, { port: hostPort, node: node.node });
    url = (await sandbox.tunnels())[hostPort]!.url;
  }, 120_000);

  afterAll(async () => {
    await sandbox?.terminate();
    await proxy?.close();
  });

  const agentOptions = (cwd: string) => ({
    port: hostPort,
    token: host.token,
    executable: claude.executable,
    credentials: proxy,
    env: testEnv,
    cwd,
    closeGraceMs: 1_000,
  });

  it('serves two agents at once through one port, each in its own directory', async () => {
    const [red, blue] = await Promise.all([
      AgentSession.connect(sandbox, { ...agentOptions('/workspace/red'), agentId: 'red' }),
      AgentSession.connect(sandbox, { ...agentOptions('/workspace/blue'), agentId: 'blue' }),
    ]);
    try {
      expect([red.agentId, blue.agentId]).toEqual(['red', 'blue']);
      const [redTurn, blueTurn] = await Promise.all([
        red.send('BASH: echo red in $(pwd)').result,
        blue.send('BASH: echo blue in $(pwd)').result,
      ]);
      expect(redTurn.text).toBe('Tool said: red in /workspace/red');
      expect(blueTurn.text).toBe('Tool said: blue in /workspace/blue');
      expect(red.sessionId).not.toBe(blue.sessionId);
      // The host's token reaches it over stdin: no process environment in the sandbox holds it,
      // though the host's environment is readable there (it and its agents have the port variable).
      const environ = "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'";
      const leaks = await red.send(`BASH: ${environ} | grep -c -F -e '${host.token}'; ${environ} | grep -c SANDPORT_AGENT_HOST_PORT=`)
        .result;
      expect(leaks.text).toMatch(/^Tool said: 0\n[1-9]\d*$/);
      const listed = (await (await fetch(`${url}/agents`, { headers: { authorization: `Bearer ${host.token}` } })).json()) as {
        agents: Array<{ agent: string; busy: boolean; cwd: string }>;
      };
      expect(
        listed.agents
          .filter((agent) => ['red', 'blue'].includes(agent.agent))
          .map(({ agent, busy, cwd }) => ({ agent, busy, cwd }))
          .sort((a, b) => a.agent.localeCompare(b.agent)),
      ).toEqual([
        { agent: 'blue', busy: false, cwd: '/workspace/blue' },
        { agent: 'red', busy: false, cwd: '/workspace/red' },
      ]);
      // The model API saw the proxy's key swap, never a key from the sandbox.
      expect(proxy.forwarded).toBeGreaterThan(0);
    } finally {
      await Promise.all([red.close(), blue.close()]);
    }
  }, 120_000);

  it('refuses a wrong token: HTTP 401 on the upgrade and on the listing', async () => {
    await expect(
      AgentSession.connect(sandbox, { ...agentOptions('/workspace/intruder'), token: 'not-the-token-at-all' }),
    ).rejects.toSatisfy((error) => SandboxAuthenticationError.isInstance(error) && /401/.test((error as Error).message));
    expect((await fetch(`${url}/agents`)).status).toBe(401);
    expect((await fetch(`${url}/agents?token=${'x'.repeat(43)}`)).status).toBe(401);
    expect((await fetch(`${url}/agents?token=${encodeURIComponent(host.token)}`)).status).toBe(200);
  });

  it('lets a new app re-attach mid-turn after the old one was SIGKILLed, losing and repeating nothing', async () => {
    // The agent is started, then left running with no client.
    const first = await AgentSession.connect(sandbox, { ...agentOptions('/workspace/green'), agentId: 'green' });
    expect((await first.send('hello').result).text).toBe('Echo: hello');
    await first.detach();

    // App 1 (a child process) attaches, sends a turn that waits on a gate, and is killed mid-turn.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        clientScript,
        JSON.stringify({
          url,
          token: host.token,
          agent: 'green',
          prompt: 'BASH: while [ ! -e /tmp/gate-green ]; do sleep 0.1; done; echo gate opened',
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const seenByChild: Array<{ cursor: number; type: string; uuid?: string }> = [];
    for await (const line of createInterface({ input: child.stdout! })) {
      const entry = JSON.parse(line) as { cursor?: number; type?: string; uuid?: string };
      if (entry.type === undefined) continue;
      seenByChild.push(entry as { cursor: number; type: string; uuid?: string });
      // The tool call is out: the turn is running, blocked on the gate.
      if (entry.type === 'assistant') break;
    }
    const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const cursor = seenByChild.at(-1)!.cursor;

    // App 2 re-attaches after the last message app 1 handled, and finishes the turn.
    const second = await AgentSession.connect(sandbox, { ...agentOptions('/workspace/green'), attach: { agent: 'green', cursor } });
    const seenBySecond: AgentMessage[] = [];
    second.events.on('message', (message) => seenBySecond.push(message));
    expect(second.agentId).toBe('green');
    expect(second.attachedTurn).toBeDefined();
    await sandbox.files.write('/tmp/gate-green', '');
    const result = await second.attachedTurn!.result;
    expect(result.text).toBe('Tool said: gate opened');
    // The conversation goes on in the same CLI process.
    expect((await second.send('and now?').result).text).toBe('Echo: and now?');

    // A third client replays the whole transcript: app 1's part and app 2's part tile it exactly.
    const id = (message: { type: string; uuid?: string }) => `${message.type}:${message.uuid ?? ''}`;
    const observer = await AgentSession.connect(sandbox, { ...agentOptions('/workspace/green'), attach: { agent: 'green', cursor: 0 } });
    const replayed: AgentMessage[] = [];
    const cursors = new Map<string, number>();
    const lastUuid = (seenBySecond.at(-1) as { uuid?: string }).uuid;
    await new Promise<void>((resolve) =>
      observer.events.on('message', (message) => {
        replayed.push(message);
        cursors.set(id(message as { type: string; uuid?: string }), observer.cursor);
        if ((message as { uuid?: string }).uuid === lastUuid) resolve();
      }),
    );
    const fromChildOn = replayed.map(id).indexOf(id(seenByChild[0]!));
    expect(fromChildOn).toBeGreaterThanOrEqual(0);
    expect(replayed.slice(fromChildOn).map(id)).toEqual([...seenByChild.map(id), ...seenBySecond.map(id)]);
    expect(seenBySecond.map((message) => message.type)).toContain('result');
    // Cursors name the same transcript positions in every client.
    expect(seenByChild.map((entry) => cursors.get(id(entry)))).toEqual(seenByChild.map((entry) => entry.cursor));
    await observer.detach();
    await second.close();
  }, 180_000);

  it('asks a re-attached app the permission question the killed app never answered', async () => {
    const first = await AgentSession.connect(sandbox, {
      ...agentOptions('/workspace/asked'),
      agentId: 'asked',
      canUseTool: async () => ({ behavior: 'deny', message: 'not this one' }),
    });
    await first.detach();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        clientScript,
        JSON.stringify({ url, token: host.token, agent: 'asked', prompt: 'WRITE: /workspace/asked/granted.txt yes', holdPermission: true }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let cursor = 0;
    for await (const line of createInterface({ input: child.stdout! })) {
      const entry = JSON.parse(line) as { cursor?: number; asked?: string };
      if (entry.cursor !== undefined) cursor = entry.cursor;
      if (entry.asked === 'Write') break;
    }
    const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const asked: string[] = [];
    const second = await AgentSession.connect(sandbox, {
      ...agentOptions('/workspace/asked'),
      attach: { agent: 'asked', cursor },
      canUseTool: async ({ toolName }) => {
        asked.push(toolName);
        return { behavior: 'allow' };
      },
    });
    const result = await second.attachedTurn!.result;
    expect(result.isError).toBe(false);
    expect(asked).toEqual(['Write']);
    expect(await sandbox.files.readText('/workspace/asked/granted.txt')).toBe('yes');
    await second.close();
  }, 120_000);

  it('refuses to attach to an agent the host does not have', async () => {
    await expect(AgentSession.connect(sandbox, { port: hostPort, token: host.token, attach: 'nobody' })).rejects.toMatchObject({
      reason: 'session-not-found',
      message: expect.stringContaining('nobody'),
    });
  });

  it('forwards permission answers and interrupts through the host', async () => {
    const asked: string[] = [];
    const agent = await AgentSession.connect(sandbox, {
      ...agentOptions('/workspace/perm'),
      canUseTool: async ({ toolName }) => {
        asked.push(toolName);
        return { behavior: 'deny', message: 'NOPE: not through the service either' };
      },
    });
    try {
      const denied = await agent.send('WRITE: /workspace/perm/denied.txt no').result;
      expect(denied.text).toContain('NOPE: not through the service either');
      expect(asked).toEqual(['Write']);
      expect(await sandbox.files.exists('/workspace/perm/denied.txt')).toBe(false);
      const slow = agent.send('SLOW please');
      for await (const message of slow) {
        if (message.type === 'system') {
          await agent.interrupt();
          break;
        }
      }
      expect((await slow.result).error?.reason).toBe('interrupted');
      expect((await agent.send('after interrupt').result).text).toBe('Echo: after interrupt');
    } finally {
      await agent.close();
    }
  }, 120_000);

  it('speaks its documented frames to a plain WebSocket client (cat as the agent)', async () => {
    const wsUrl = `${url.replace(/^http/, 'ws')}/?token=${encodeURIComponent(host.token)}`;
    const open = async () => {
      const socket = new WebSocket(wsUrl);
      const frames: Array<Record<string, unknown>> = [];
      const waiters: Array<() => void> = [];
      socket.on('message', (data) => {
        frames.push(JSON.parse(String(data)) as Record<string, unknown>);
        for (const wake of waiters.splice(0)) wake();
      });
      const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      await new Promise((resolve) => socket.once('open', resolve));
      const frame = async (match: (frame: Record<string, unknown>) => boolean) => {
        while (!frames.some(match)) await new Promise<void>((resolve) => waiters.push(resolve));
        return frames.find(match)!;
      };
      return { socket, frames, closed, frame, send: (value: object) => socket.send(JSON.stringify(value)) };
    };
    const one = await open();
    one.send({ type: 'start', agent: 'cat', command: 'cat', args: [] });
    expect(await one.frame((frame) => frame.type === 'started')).toMatchObject({ agent: 'cat', cursor: 0 });
    one.send({ type: 'in', line: '{"type":"note","n":1}' });
    one.send({ type: 'in', line: '{"type":"note","n":2}' });
    expect(await one.frame((frame) => frame.seq === 2)).toEqual({ type: 'out', seq: 2, line: '{"type":"note","n":2}' });
    // A second start under the same id is refused while it runs; a bad frame closes with 4000.
    const twin = await open();
    twin.send({ type: 'start', agent: 'cat', command: 'cat', args: [] });
    expect(await twin.closed).toBe(agentHostCloseCodes.agentExists);
    const confused = await open();
    confused.send({ type: 'in', line: 'too early' });
    expect(await confused.closed).toBe(agentHostCloseCodes.badMessage);
    // Attach after seq 1: only line 2 is replayed; a cursor beyond the transcript is refused.
    const late = await open();
    late.send({ type: 'attach', agent: 'cat', cursor: 1 });
    expect(await late.frame((frame) => frame.type === 'attached')).toMatchObject({ agent: 'cat', cursor: 1, busy: false });
    expect(await late.frame((frame) => frame.type === 'out')).toEqual({ type: 'out', seq: 2, line: '{"type":"note","n":2}' });
    const ahead = await open();
    ahead.send({ type: 'attach', agent: 'cat', cursor: 99 });
    expect(await ahead.closed).toBe(agentHostCloseCodes.cursorExpired);
    // stdin EOF ends cat; every attached client hears the exit.
    one.send({ type: 'end' });
    expect(await late.frame((frame) => frame.type === 'exit')).toMatchObject({ type: 'exit', exitCode: 0 });
    expect(late.frames.filter((frame) => frame.type === 'out').map((frame) => frame.seq)).toEqual([2]);
    one.socket.close();
    late.socket.close();
  }, 60_000);

  it('ends the host cleanly: its agents end with it and it exits 0', async () => {
    const agent = await AgentSession.connect(sandbox, { ...agentOptions('/workspace/last'), agentId: 'last' });
    const exit = new Promise((resolve) => agent.events.once('exit', resolve));
    expect((await agent.send('bye').result).text).toBe('Echo: bye');
    expect(await host.stop()).toEqual({ exitCode: 0, signal: undefined });
    await exit;
    expect(agent.isOpen).toBe(false);
    await expect(agent.send('anyone?').result).rejects.toMatchObject({ reason: expect.stringMatching(/process-exited|closed/) });
    await agent.close();
  }, 120_000);
});

describeWithAgentHarness('agent service: the host ends with its sandbox', {}, (harness) => {
  let host: AgentHost;
  it('settles the host process when the sandbox is terminated', async () => {
    const node = nodeHostMount();
    const sandbox = await harness.provider.create({ network: 'block', ports: [hostPort], volumes: node.createOptions.volumes });
    host = await startAgentHost(sandbox, { port: hostPort, node: node.node });
    await sandbox.terminate();
    const outcome = await host.process.wait().then(
      () => 'ended',
      () => 'ended',
    );
    expect(outcome).toBe('ended');
  }, 120_000);
});
