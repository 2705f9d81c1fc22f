import { expect, it } from 'vitest';
import { join } from 'node:path';
import { AgentSession, AgentSessionError, DirectorySessionStore, MemorySessionStore } from '../../src/agent/index.js';
import { projectDirName } from '../../src/agent/session-files.js';
import { describeWithAgentHarness, type AgentHarness } from './harness.js';

/** Texts of the user prompts the fake API was sent in its latest request. */
function promptsInLastRequest(harness: AgentHarness): string[] {
  const messages = harness.fake.requests.filter((request) => request.url.includes('/v1/messages')).at(-1)!.body.messages as any[];
  return messages
    .filter((message) => message.role === 'user')
    .flatMap((message) =>
      typeof message.content === 'string'
        ? [message.content]
        : message.content.filter((block: any) => block.type === 'text').map((block: any) => block.text),
    )
    .filter((text: string) => !text.startsWith('<system-reminder>'));
}

describeWithAgentHarness('AgentSession persistence (hybrid sessions)', {}, (harness) => {
  it('saves after every turn, survives the sandbox dying mid-turn, and resumes in a fresh sandbox with the same id', async () => {
    const store = new DirectorySessionStore(join(harness.dir, 'store'));
    const first = await harness.createSandbox();
    const agent = await AgentSession.start(first, harness.agentOptions({ cwd: '/workspace/project', store }));
    const turn = agent.send('remember ALPHA-7');
    expect((await turn.result).text).toBe('Echo: remember ALPHA-7');
    await turn.saved;
    const sessionId = agent.sessionId!;
    const saved = await store.load(sessionId);
    expect(saved?.files.map((file) => file.path)).toContain(`${sessionId}.jsonl`);
    expect(saved?.metadata.turns).toBe(1);

    // The sandbox dies while the second turn streams: a typed error, nothing hangs.
    const doomed = agent.send('SLOW please');
    await new Promise<void>((resolve) => agent.events.once('message', () => resolve()));
    await first.terminate();
    const error = await doomed.result.catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(error)).toBe(true);
    expect(['sandbox-ended', 'process-exited']).toContain((error as AgentSessionError).reason);
    await agent.close();

    const second = await harness.createSandbox();
    try {
      await using resumed = await AgentSession.resume(second, { ...harness.agentOptions({ cwd: '/workspace/project' }), sessionId, store });
      expect(resumed.sessionId).toBe(sessionId);
      const result = await resumed.send('what did I say').result;
      expect(result.text).toBe('Echo: what did I say');
      expect(result.sessionId).toBe(sessionId);
      expect(promptsInLastRequest(harness)).toEqual(expect.arrayContaining(['remember ALPHA-7', 'what did I say']));
      await resumed.flush();
      expect((await store.load(sessionId))?.metadata.turns).toBe(2);
    } finally {
      await second.terminate();
    }
  });

  it('resumes under another working directory, and fork gives a new id while the original stays', async () => {
    const store = new MemorySessionStore();
    const sandbox = await harness.createSandbox();
    try {
      const agent = await AgentSession.start(sandbox, harness.agentOptions({ cwd: '/workspace/a', store }));
      await agent.send('remember BRAVO').result;
      await agent.close();
      const sessionId = agent.sessionId!;
      const before = (await store.load(sessionId))!;

      await using forked = await AgentSession.resume(sandbox, {
        ...harness.agentOptions({ cwd: '/srv/elsewhere' }),
        sessionId,
        store,
        fork: true,
      });
      const result = await forked.send('and now').result;
      expect(result.sessionId).not.toBe(sessionId);
      expect(promptsInLastRequest(harness)).toEqual(expect.arrayContaining(['remember BRAVO', 'and now']));
      await forked.flush();
      const fork = await store.load(result.sessionId);
      expect(fork?.metadata.forkedFrom).toBe(sessionId);
      expect(await sandbox.files.exists(`${forked.configDir}/projects/${projectDirName('/srv/elsewhere')}/${result.sessionId}.jsonl`)).toBe(
        true,
      );
      const after = (await store.load(sessionId))!;
      expect(after.metadata.updatedAt).toBe(before.metadata.updatedAt);
    } finally {
      await sandbox.terminate();
    }
  });

  it('rejects resuming an unknown session', async () => {
    const sandbox = await harness.createSandbox();
    try {
      const error = await AgentSession.resume(sandbox, {
        ...harness.agentOptions(),
        sessionId: 'no-such-session',
        store: new MemorySessionStore(),
      }).catch((caught: unknown) => caught);
      expect((error as AgentSessionError).reason).toBe('session-not-found');
    } finally {
      await sandbox.terminate();
    }
  });
});
