/**
 * Ephemeral pattern: one task, one fresh sandbox, destroyed afterwards. Claude Code clones a
 * repository inside the sandbox, finds the failing test and fixes the bug; the app checks the
 * fix itself, keeps the patch, and the sandbox is gone.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-one-shot.ts
 * The "remote" is a small git repository this example makes on the host and ships in as a
 * bundle (no network needed); for a real one, clone its URL with an allowlist naming its host.
 * The real key stays on the host: the sandbox reaches the API only through the credential proxy.
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples', defaultImage: 'node:22-bookworm' });
 * (an image with git and python3; set SANDPORT_PROXY_PUBLIC_URL where there is no host route).
 * Or on Docker, with an image that has python3 (the credential proxy's host route runs through
 * it) and git, e.g. built FROM debian:bookworm-slim with `apt-get install -y python3 git`:
 *   const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: 'sandport/examples:bookworm' });
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentSession, CredentialProxy, claudeCodeHostMount, ensureClaudeCode, type SandboxProvider } from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();

/**
 * Where the credential proxy is for sandboxes: a host route on local and Docker; for providers
 * without one (Modal, E2B, …) the URL mode, at the public URL of a listener you put behind it
 * (README, "Credentials for sandboxes that are not on this host").
 */
const proxyOptions = {
  apiKey,
  baseUrl: process.env.ANTHROPIC_BASE_URL,
  ...(process.env.SANDPORT_PROXY_PUBLIC_URL && {
    listen: { host: process.env.SANDPORT_PROXY_HOST ?? '127.0.0.1', port: Number(process.env.SANDPORT_PROXY_PORT ?? 8080) },
    publicUrl: process.env.SANDPORT_PROXY_PUBLIC_URL,
  }),
};

// The upstream repository: a calculator whose add() subtracts, and the test that catches it.
const upstream = await mkdtemp(join(tmpdir(), 'sandport-upstream-'));
await writeFile(join(upstream, 'calc.py'), 'def add(a, b):\n    return a - b\n');
await writeFile(
  join(upstream, 'test_calc.py'),
  'import unittest\nfrom calc import add\n\n\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\nif __name__ == "__main__":\n    unittest.main()\n',
);
const git = (...args: string[]) => execFileSync('git', ['-C', upstream, ...args], { stdio: 'pipe' });
git('init', '-q', '-b', 'main');
git('add', '.');
git('-c', 'user.name=Example', '-c', 'user.email=example@example.com', 'commit', '-q', '-m', 'Add calc');
git('bundle', 'create', join(upstream, 'calc.bundle'), 'HEAD', 'main');

// The CLI: local and Docker mount the host's pinned binary read-only; elsewhere it is uploaded
// once (or baked into the image: claudeCodeImage()).
const mount =
  provider.capabilities.volumes === 'host-path' || provider.capabilities.volumes === 'host-path-or-named'
    ? claudeCodeHostMount()
    : undefined;
const proxy = await CredentialProxy.start(proxyOptions);
const sandbox = await provider.create(proxy.createOptions(provider, { network: 'block', timeoutMs: 30 * 60_000, ...mount?.createOptions }));
let patch = '';
try {
  const cli = await ensureClaudeCode(sandbox, mount ? { executable: mount.executable, install: false } : { install: 'upload' });
  await sandbox.files.write('/tmp/calc.bundle', await readFile(join(upstream, 'calc.bundle')));
  await sandbox.run(['git', 'clone', '-q', '/tmp/calc.bundle', '/workspace/calc'], { throwOnNonZeroExit: true });
  const before = await sandbox.run(['python3', '-B', '-m', 'unittest', '-q'], { cwd: '/workspace/calc' });
  console.log(`cloned into sandbox ${sandbox.id}; tests before: exit ${before.exitCode}`);

  await using agent = await AgentSession.start(sandbox, {
    executable: cli.executable,
    credentials: proxy,
    cwd: '/workspace/calc',
    maxTurns: 15,
  });
  const result = await agent.send(
    'The test in this repository fails. Run it with `python3 -B -m unittest -q`, fix the bug in the code (not the test), and run the test again to confirm.',
  ).result;
  console.log(`agent: ${result.text}`);
  console.log(`cost $${result.costUsd.toFixed(4)}, ${result.numTurns} model calls, error: ${result.error?.reason ?? 'none'}`);

  // Trust, but verify: the app runs the tests itself and keeps the patch before the sandbox goes.
  const after = await sandbox.run(['python3', '-B', '-m', 'unittest', '-q'], { cwd: '/workspace/calc' });
  console.log(`tests after: exit ${after.exitCode}`);
  patch = (await sandbox.run(['git', 'diff'], { cwd: '/workspace/calc' })).stdout;
} finally {
  await sandbox.terminate(); // ephemeral: nothing of the sandbox outlives the task
  await proxy.close();
  await rm(upstream, { recursive: true, force: true });
}
console.log(`patch:\n${patch.trimEnd()}`);
console.log(`sandbox after the task: ${(await sandbox.poll()).state}`);
