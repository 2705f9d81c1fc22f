/**
 * The agent service on the local provider, one run: a turn through the agent host next to a turn
 * over exec (`AgentSession.start`), and re-attaching to a running agent (idle, with nothing to
 * replay, and with its whole transcript replayed from cursor 0), against the fake Messages API.
 *   npx tsx bench/agent-service.ts [--quick]
 * Needs what the local provider needs (bubblewrap) and the host's `claude` (see test/agent/harness.ts).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSandboxProvider } from '../adapters/local/index.js';
import { AgentSession, claudeCodeHostMount, nodeHostMount, startAgentHost } from '../src/agent/index.js';
import { startFakeAnthropic } from '../test/fake-anthropic/fake-anthropic.js';

const rounds = process.argv.includes('--quick') ? 5 : 20;
const port = 7681;

function p50(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.floor((sorted.length - 1) / 2)]! * 10) / 10;
}

async function timed(body: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await body();
  return performance.now() - started;
}

const dir = await mkdtemp(join(tmpdir(), 'sandport-agent-service-bench-'));
await chmod(dir, 0o755);
const fake = await startFakeAnthropic({ socketPath: join(dir, 'api.sock') });
const claude = claudeCodeHostMount();
const node = nodeHostMount();
const provider = createLocalSandboxProvider();
// The sandbox reaches the fake API only through this forwarded unix socket.
const sandbox = await provider.create({
  network: 'block',
  ports: [port],
  volumes: { ...claude.createOptions.volumes, ...node.createOptions.volumes },
  providerOptions: { local: { hostForwards: { 8123: fake.socketPath! } } },
});
try {
  const host = await startAgentHost(sandbox, { port, node: node.node });
  const options = {
    executable: claude.executable,
    credentials: { apiKey: 'sk-ant-bench', baseUrl: 'http://127.0.0.1:8123', exposeToSandbox: true as const },
    env: { CLAUDE_CODE_MAX_RETRIES: '0' },
    closeGraceMs: 1_000,
  };
  const served = await AgentSession.connect(sandbox, { ...options, port, token: host.token, agentId: 'bench', cwd: '/workspace/served' });
  const direct = await AgentSession.start(sandbox, { ...options, cwd: '/workspace/direct' });
  const viaHost: number[] = [];
  const viaExec: number[] = [];
  for (let round = 0; round < rounds; round++) {
    viaHost.push(await timed(() => served.send(`hello ${round}`).result));
    viaExec.push(await timed(() => direct.send(`hello ${round}`).result));
  }
  await served.detach();
  const idle: number[] = [];
  const replay: number[] = [];
  let replayed = 0;
  for (let round = 0; round < rounds; round++) {
    idle.push(await timed(async () => (await AgentSession.connect(sandbox, { port, token: host.token, attach: 'bench' })).detach()));
    replay.push(
      await timed(async () => {
        const session = await AgentSession.connect(sandbox, { port, token: host.token, attach: { agent: 'bench', cursor: 0 } });
        let count = 0;
        session.events.on('message', () => count++);
        // The replay is in once the last turn's result came back round.
        await new Promise<void>((resolve) =>
          session.events.on('message', (message) => message.type === 'result' && count >= rounds * 3 && resolve()),
        );
        replayed = count;
        await session.detach();
      }),
    );
  }
  console.table([
    { what: 'turn via the agent host (p50 ms)', value: p50(viaHost) },
    { what: 'turn via exec, AgentSession.start (p50 ms)', value: p50(viaExec) },
    { what: 're-attach to an idle agent (p50 ms)', value: p50(idle) },
    { what: `re-attach replaying ${replayed} messages from cursor 0 (p50 ms)`, value: p50(replay) },
  ]);
  await direct.close();
  await host.stop();
} finally {
  await sandbox.terminate();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
}
