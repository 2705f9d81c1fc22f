/**
 * One-shot task: Claude Code runs inside a local sandbox, the real key stays on the host.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-one-shot.ts
 * The sandbox reaches the API only through the credential proxy's route (network 'block');
 * the CLI is the host's pinned binary, mounted read-only.
 */
import { createLocalSandboxProvider } from 'sandport/local';
import { AgentSession, CredentialProxy, claudeCodeHostMount } from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider = createLocalSandboxProvider();
const cli = claudeCodeHostMount();
await using proxy = await CredentialProxy.start({ apiKey, baseUrl: process.env.ANTHROPIC_BASE_URL });
await using sandbox = await provider.create(proxy.createOptions(provider, { network: 'block', volumes: cli.createOptions.volumes }));
await using agent = await AgentSession.start(sandbox, { executable: cli.executable, credentials: proxy, cwd: '/workspace', maxTurns: 10 });

const result = await agent.send('Write a Python script fizzbuzz.py that prints FizzBuzz for 1..15, run it, and tell me the last line.')
  .result;
console.log(result.text);
console.log(`cost $${result.costUsd.toFixed(4)}, ${result.numTurns} model calls, error: ${result.error?.reason ?? 'none'}`);
console.log(`fizzbuzz.py in the sandbox: ${await sandbox.files.exists('/workspace/fizzbuzz.py')}`);
