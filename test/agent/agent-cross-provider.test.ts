import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { AgentSession, CredentialProxy, DirectorySessionStore, claudeCodeHostMount } from '../../src/agent/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';
import { agentSkipReason, testEnv } from './harness.js';

const skip = agentSkipReason() ?? (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)');
if (skip) console.warn(`[agent cross-provider test] skipped: ${skip}`);

// The Docker sandbox needs python3 (or node) for the forwarder to the credential proxy; the same
// content-cached image the Docker conformance run builds.
const dockerImage = { base: baseImage, commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'] };

describe.skipIf(skip !== undefined)('AgentSession across providers', () => {
  let fake: FakeAnthropic;
  let storeDir: string;
  beforeAll(async () => {
    fake = await startFakeAnthropic();
    storeDir = await mkdtemp(join(tmpdir(), 'sandport-cross-store-'));
  });
  afterAll(async () => {
    await fake?.close();
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it('a session started in a local sandbox resumes in a Docker sandbox, both behind the credential proxy', async () => {
    const realKey = `sk-ant-real-${Math.random().toString(36).slice(2)}`;
    await using proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: fake.url });
    const cli = claudeCodeHostMount();
    const store = new DirectorySessionStore(storeDir);
    const agentOptions = { executable: cli.executable, credentials: proxy, cwd: '/workspace/project', store, env: testEnv, startTimeoutMs: 60_000, closeGraceMs: 1_000 };

    const local = createLocalSandboxProvider();
    const first = await local.create(proxy.createOptions(local, { network: 'block', volumes: cli.createOptions.volumes }));
    const agent = await AgentSession.start(first, agentOptions);
    const turn = agent.send('remember BRAVO-9');
    expect((await turn.result).text).toBe('Echo: remember BRAVO-9');
    await turn.saved;
    const sessionId = agent.sessionId!;
    await agent.close();
    await first.terminate();

    const docker = createDockerSandboxProvider();
    const second = await docker.create(proxy.createOptions(docker, { image: dockerImage, network: 'block', volumes: cli.createOptions.volumes, timeoutMs: 5 * 60_000 }));
    try {
      await using resumed = await AgentSession.resume(second, { ...agentOptions, sessionId });
      expect(resumed.sessionId).toBe(sessionId);
      const result = await resumed.send('what did I say').result;
      expect(result.text).toBe('Echo: what did I say');
      expect(result.sessionId).toBe(sessionId);
      // The resumed CLI sent the first sandbox's history along.
      const last = fake.requests.filter((request) => request.url.includes('/v1/messages')).at(-1)!;
      expect(JSON.stringify(last.body.messages)).toContain('remember BRAVO-9');
      // Upstream saw the real key; inside the Docker sandbox it appears nowhere.
      expect(last.headers['x-api-key']).toBe(realKey);
      const scan = await second.run(['/bin/sh', '-c', `grep -rl "${realKey}" /proc/[0-9]*/environ /workspace /tmp /root 2>/dev/null | head -5; echo scanned`]);
      expect(scan.stdout.trim()).toBe('scanned');
    } finally {
      await second.terminate();
    }
  }, 240_000);
});
