import { expect, it } from 'vitest';
import { AgentSession, CredentialProxy, claudeCodeHostMount } from '../../src/agent/index.js';
import { SandboxInvalidArgumentError } from '../../src/index.js';
import { describeWithAgentHarness, testEnv } from './harness.js';

const realKey = `sk-ant-api03-REAL-SECRET-${Date.now()}`;

// Everything writable in the sandbox, and the environment and argv of every process in it. The
// key arrives on stdin, so that the scan's own argv and environment do not hold it.
const scan = `
IFS= read -r needle
set -- "$needle"
hits=0
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  if tr '\\0' '\\n' < "$f" 2>/dev/null | grep -qF "$1"; then echo "found in $f"; hits=1; fi
done
found=$(grep -rlsF -- "$1" /tmp /root /workspace /home /var /run /sandport 2>/dev/null)
if [ -n "$found" ]; then echo "found in $found"; hits=1; fi
echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
exit $hits`;

describeWithAgentHarness('credential proxy', {}, (harness) => {
  it('keeps the real API key out of the sandbox: not in files, not in any process environment', async () => {
    await using proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: harness.fake.url });
    const mount = claudeCodeHostMount();
    // Only the proxy's route is opened: this sandbox has no direct path to the fake API.
    const sandbox = await harness.provider.create(
      proxy.createOptions(harness.provider, { network: 'block', volumes: mount.createOptions.volumes }),
    );
    try {
      await using agent = await AgentSession.start(sandbox, {
        executable: mount.executable,
        credentials: proxy,
        env: testEnv,
        cwd: '/workspace/secret',
        closeGraceMs: 1_000,
      });
      const seenBefore = harness.fake.requests.length;
      const result = await agent.send('BASH: env | grep -E "ANTHROPIC_(API_KEY|BASE_URL)" | sort').result;
      // The agent's own Bash sees only the placeholder and the route.
      expect(result.text).toContain('ANTHROPIC_API_KEY=sk-ant-api03-sandport-proxy-');
      expect(result.text).toContain('ANTHROPIC_BASE_URL=http://127.0.0.1:');
      expect(result.text).not.toContain(realKey);
      // Upstream received the real key, swapped in by the proxy.
      const upstream = harness.fake.requests.slice(seenBefore);
      expect(upstream.length).toBeGreaterThan(0);
      expect(upstream.every((request) => request.headers['x-api-key'] === realKey)).toBe(true);
      expect(proxy.forwarded).toBeGreaterThan(0);
      // While the CLI runs: nothing in the sandbox holds the key.
      const scanned = await sandbox.run(['/bin/sh', '-c', scan, 'scan'], { stdin: `${realKey}\n` });
      expect(scanned.stdout).toMatch(/processes=\d+/);
      expect(scanned.stdout).not.toContain('found in');
      expect(scanned.exitCode).toBe(0);
      // The scan itself works: a planted copy is found.
      await sandbox.files.write('/tmp/planted', `x${realKey}x`);
      expect((await sandbox.run(['/bin/sh', '-c', scan, 'scan'], { stdin: `${realKey}\n` })).exitCode).toBe(1);
      await sandbox.files.remove('/tmp/planted');
      // A request without the placeholder is refused by the proxy, not forwarded.
      const forwarded = proxy.forwarded;
      const refused = await sandbox.run([
        'curl',
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'POST',
        '-H',
        'x-api-key: guessed',
        `${proxy.route(harness.provider).sandboxUrl}/v1/messages`,
      ]);
      expect(refused.stdout).toBe('401');
      expect(proxy.forwarded).toBe(forwarded);
    } finally {
      await sandbox.terminate();
    }
  });

  it('forwards an OAuth token as a bearer token', async () => {
    const realToken = `sk-ant-oat01-REAL-TOKEN-${Date.now()}`;
    await using proxy = await CredentialProxy.start({ oauthToken: realToken, baseUrl: harness.fake.url });
    const mount = claudeCodeHostMount();
    const sandbox = await harness.provider.create(
      proxy.createOptions(harness.provider, { network: 'block', volumes: mount.createOptions.volumes }),
    );
    try {
      await using agent = await AgentSession.start(sandbox, {
        executable: mount.executable,
        credentials: proxy,
        env: testEnv,
        closeGraceMs: 1_000,
      });
      const seenBefore = harness.fake.requests.length;
      expect((await agent.send('hello with oauth').result).text).toBe('Echo: hello with oauth');
      const upstream = harness.fake.requests.slice(seenBefore);
      expect(upstream.length).toBeGreaterThan(0);
      expect(upstream.every((request) => request.headers.authorization === `Bearer ${realToken}`)).toBe(true);
    } finally {
      await sandbox.terminate();
    }
  });

  it('refuses credentials passed into the sandbox unless exposeToSandbox is said', async () => {
    const sandbox = await harness.createSandbox();
    try {
      const error = await AgentSession.start(sandbox, { credentials: { apiKey: 'sk-x' } as never }).catch((caught: unknown) => caught);
      expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
    } finally {
      await sandbox.terminate();
    }
  });
});
