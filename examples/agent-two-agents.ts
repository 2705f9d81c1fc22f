/**
 * Two agents in one sandbox at the same time: each has its own working and config directory,
 * so their files and sessions never mix. One proxy serves both.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-two-agents.ts
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

const common = { executable: cli.executable, credentials: proxy, maxTurns: 10 };
await using writer = await AgentSession.start(sandbox, { ...common, cwd: '/workspace/writer' });
await using reviewer = await AgentSession.start(sandbox, { ...common, cwd: '/workspace/reviewer', allowedTools: ['Read', 'Bash'] });

const [poem, check] = await Promise.all([
  writer.send('Write a four-line poem about sandboxes to poem.txt.').result,
  reviewer.send('Create checklist.md with three things a code reviewer should look for.').result,
]);
console.log(`writer (${writer.sessionId}): ${poem.text}`);
console.log(`reviewer (${reviewer.sessionId}): ${check.text}`);
console.log(await sandbox.run(['/bin/sh', '-c', 'ls /workspace/writer /workspace/reviewer']).then((result) => result.stdout));
