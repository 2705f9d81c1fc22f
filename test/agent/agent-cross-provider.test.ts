import { join } from 'node:path';
import { expect, it } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { AgentSession, CredentialProxy, DirectorySessionStore } from '../../src/agent/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { describeWithAgentHarness, testEnv } from './harness.js';

const dockerSkipReason = () => (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)');

// The Docker sandbox needs python3 (or node) for the forwarder to the credential proxy; the same
// content-cached image the Docker conformance run builds.
const dockerImage = {
  base: baseImage,
  commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
};

describeWithAgentHarness('AgentSession across providers', { skipReason: dockerSkipReason }, (harness) => {
  it('a session started in a local sandbox resumes in a Docker sandbox, both behind the credential proxy', async () => {
    const realKey = `sk-ant-real-${Math.random().toString(36).slice(2)}`;
    await using proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: harness.fake.url });
    const store = new DirectorySessionStore(join(harness.dir, 'store'));
    const agentOptions = {
      executable: harness.executable,
      credentials: proxy,
      cwd: '/workspace/project',
      store,
      env: testEnv,
      startTimeoutMs: 60_000,
      closeGraceMs: 1_000,
    };

    const local = harness.provider;
    const first = await local.create(proxy.createOptions(local, { network: 'block', volumes: harness.volumes }));
    const agent = await AgentSession.start(first, agentOptions);
    const turn = agent.send('remember BRAVO-9');
    expect((await turn.result).text).toBe('Echo: remember BRAVO-9');
    await turn.saved;
    const sessionId = agent.sessionId!;
    await agent.close();
    await first.terminate();

    const docker = createDockerSandboxProvider();
    const second = await docker.create(
      proxy.createOptions(docker, { image: dockerImage, network: 'block', volumes: harness.volumes, timeoutMs: 5 * 60_000 }),
    );
    try {
      await using resumed = await AgentSession.resume(second, { ...agentOptions, sessionId });
      expect(resumed.sessionId).toBe(sessionId);
      const result = await resumed.send('what did I say').result;
      expect(result.text).toBe('Echo: what did I say');
      expect(result.sessionId).toBe(sessionId);
      // The resumed CLI sent the first sandbox's history along.
      const last = harness.fake.requests.filter((request) => request.url.includes('/v1/messages')).at(-1)!;
      expect(JSON.stringify(last.body.messages)).toContain('remember BRAVO-9');
      // Upstream saw the real key; inside the Docker sandbox it appears nowhere.
      expect(last.headers['x-api-key']).toBe(realKey);
      const scan = await second.run([
        '/bin/sh',
        '-c',
        `grep -rl -e "${realKey}" /proc/[0-9]*/environ /workspace /tmp /root 2>/dev/null | head -5; echo scanned`,
      ]);
      expect(scan.stdout.trim()).toBe('scanned');
    } finally {
      await second.terminate();
    }
  }, 240_000);
});
