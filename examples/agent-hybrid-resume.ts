/**
 * Hybrid session: the transcript is saved to a store after every turn; the first sandbox is
 * then killed, and a fresh sandbox continues the same session (same id) from the store.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-hybrid-resume.ts
 * Any two providers work the same way: only `sandbox.files` and `exec` are used to move it.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSandboxProvider } from 'sandport/local';
import { AgentSession, CredentialProxy, DirectorySessionStore, claudeCodeHostMount } from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider = createLocalSandboxProvider();
const cli = claudeCodeHostMount();
const store = new DirectorySessionStore(await mkdtemp(join(tmpdir(), 'sandport-sessions-')));
await using proxy = await CredentialProxy.start({ apiKey, baseUrl: process.env.ANTHROPIC_BASE_URL });
const sandboxOptions = proxy.createOptions(provider, { network: 'block', volumes: cli.createOptions.volumes });

const first = await provider.create(sandboxOptions);
const agent = await AgentSession.start(first, { executable: cli.executable, credentials: proxy, cwd: '/workspace/app', store });
const turn = agent.send('My favourite number is 42. Reply with one word: noted.');
console.log(`first sandbox says: ${(await turn.result).text}`);
await turn.saved;
const sessionId = agent.sessionId!;
await first.terminate(); // the sandbox is gone, the session is not
await agent.close();
console.log(`session ${sessionId} saved to ${store.root}; first sandbox terminated`);

await using second = await provider.create(sandboxOptions);
await using resumed = await AgentSession.resume(second, {
  sessionId,
  store,
  executable: cli.executable,
  credentials: proxy,
  cwd: '/workspace/app',
});
const answer = await resumed.send('What is my favourite number?').result;
console.log(`fresh sandbox says: ${answer.text} (same session: ${answer.sessionId === sessionId})`);
