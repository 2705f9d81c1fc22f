/**
 * Multi-turn chat with streaming output: several turns in one CLI process, text printed as the
 * model streams it (`includePartialMessages`), cost per turn and in total.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-chat.ts
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
await using agent = await AgentSession.start(sandbox, {
  executable: cli.executable,
  credentials: proxy,
  includePartialMessages: true,
  appendSystemPrompt: 'Keep answers under three sentences.',
});

for (const prompt of ['Create notes.md with three facts about octopuses.', 'Now add a fourth fact and show me the file.']) {
  console.log(`\n> ${prompt}`);
  const turn = agent.send(prompt);
  for await (const message of turn) {
    if (message.type === 'stream_event' && message.event.type === 'content_block_delta' && message.event.delta.type === 'text_delta') {
      process.stdout.write(message.event.delta.text);
    } else if (message.type === 'assistant') {
      for (const block of message.message.content) if (block.type === 'tool_use') process.stdout.write(`\n  [tool ${block.name}]\n`);
    }
  }
  const result = await turn.result;
  console.log(`\n  (turn: $${result.costUsd.toFixed(4)}; session: $${result.totalCostUsd.toFixed(4)})`);
}
