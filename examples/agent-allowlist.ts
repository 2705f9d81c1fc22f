/**
 * Claude Code in a sandbox that may reach nothing but the model API: an empty egress allowlist
 * (`network: { allowDomains: [] }`) plus the credential proxy's route. The CLI reaches the API
 * through that route (its own loopback, which the proxy variables leave alone); everything else
 * the agent tries goes to the egress proxy and is refused, and each refusal is an `egress` event.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-allowlist.ts
 * To let the agent install packages, list the registry: `allowDomains: ['registry.example.com']`.
 */
import { createLocalSandboxProvider } from 'sandport/local';
import { AgentSession, CredentialProxy, claudeCodeHostMount } from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider = createLocalSandboxProvider();
const decisions: string[] = [];
provider.events.on('egress', (event) =>
  decisions.push(`${event.decision} ${event.host}:${event.port}${event.reason ? ` (${event.reason})` : ''}`),
);

const cli = claudeCodeHostMount();
await using proxy = await CredentialProxy.start({ apiKey, baseUrl: process.env.ANTHROPIC_BASE_URL });
await using sandbox = await provider.create(
  proxy.createOptions(provider, { network: { allowDomains: [] }, volumes: cli.createOptions.volumes }),
);
await using agent = await AgentSession.start(sandbox, { executable: cli.executable, credentials: proxy, cwd: '/workspace', maxTurns: 5 });

const probe = `curl -sS -m 10 -o /dev/null -w '%{http_code}' https://example.com; echo " exit=$?"`;
const result = await agent.send(`Check whether this sandbox reaches the internet, and tell me the output. BASH: ${probe}`).result;
console.log(result.text);
console.log(`model API requests through the credential proxy: ${proxy.forwarded}`);
console.log(`connections the egress proxy allowed: ${decisions.filter((line) => line.startsWith('allowed')).length}`);
for (const line of decisions) console.log(`  egress: ${line}`);
