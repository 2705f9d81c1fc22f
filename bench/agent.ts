/**
 * AgentSession vs the raw CLI, same sandbox, same fake API, same binary:
 * - send → first assistant message, and send → result (one turn), for text turns;
 * - baseline: the CLI exec'd directly in the sandbox with the same argv and env, the user line
 *   written to its stdin and stdout parsed by hand.
 * Target: AgentSession's overhead ≤ 50 ms at p50. Run alone: npx tsx bench/agent.ts [--quick]
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalSandboxProvider } from '../adapters/local/index.js';
import { AgentSession, claudeCodeHostMount } from '../src/agent/index.js';
import { lines } from '../src/index.js';
import { startFakeAnthropic } from '../test/fake-anthropic/fake-anthropic.js';
import { goals, latencyRow, type BenchRow } from './stats.js';

const sandboxPort = 8123;

export async function runAgentBench(options: { quick?: boolean } = {}): Promise<BenchRow[]> {
  const turns = options.quick ? 8 : 25;
  const warmup = 2;
  const dir = await mkdtemp(join(tmpdir(), 'sandport-agent-bench-'));
  await chmod(dir, 0o755);
  const fake = await startFakeAnthropic({ socketPath: join(dir, 'api.sock') });
  const cli = claudeCodeHostMount();
  const provider = createLocalSandboxProvider();
  const sandbox = await provider.create({
    network: 'block',
    volumes: cli.createOptions.volumes,
    providerOptions: { local: { hostForwards: { [sandboxPort]: fake.socketPath! } } },
  });
  try {
    // AgentSession: one process, many turns.
    const firstAssistant: number[] = [];
    const perTurn: number[] = [];
    const agent = await AgentSession.start(sandbox, {
      executable: cli.executable,
      cwd: '/workspace/agent',
      credentials: { apiKey: 'sk-ant-bench', baseUrl: `http://127.0.0.1:${sandboxPort}`, exposeToSandbox: true },
      env: { CLAUDE_CODE_MAX_RETRIES: '0' },
    });
    for (let index = 0; index < warmup + turns; index++) {
      const started = performance.now();
      let first: number | undefined;
      const turn = agent.send(`bench turn ${index}`);
      for await (const message of turn) if (message.type === 'assistant' && first === undefined) first = performance.now() - started;
      await turn.result;
      if (index >= warmup) {
        firstAssistant.push(first!);
        perTurn.push(performance.now() - started);
      }
    }
    // The exact argv and env AgentSession used, for the baseline.
    const probe = await sandbox.run([
      '/bin/sh',
      '-c',
      `for p in /proc/[0-9]*; do if [ "$(tr '\\0' '\\n' < $p/cmdline 2>/dev/null | head -n 1)" = "$1" ]; then tr '\\0' '\\n' < $p/cmdline; echo ===; tr '\\0' '\\n' < $p/environ; exit 0; fi; done`,
      'probe',
      cli.executable,
    ]);
    const [argvText, envText] = probe.stdout.split('===\n');
    const capturedArgv = argvText!.trim().split('\n');
    const capturedEnv: Record<string, string> = Object.fromEntries(
      envText!
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    await agent.close();

    // Raw: the same CLI exec'd directly, stream-json by hand.
    const rawFirst: number[] = [];
    const rawTurn: number[] = [];
    const env = { ...capturedEnv!, CLAUDE_CONFIG_DIR: '/tmp/raw-bench', CLAUDE_CODE_TMPDIR: '/tmp/raw-bench/tmp' };
    await sandbox.run(['mkdir', '-p', '/tmp/raw-bench/tmp', '/workspace/raw']);
    const raw = await sandbox.exec(capturedArgv!, { env, cwd: '/workspace/raw' });
    const writer = raw.stdin.getWriter();
    const output = lines(raw.stdout)[Symbol.asyncIterator]();
    void raw.stderr.pipeTo(new WritableStream());
    for (let index = 0; index < warmup + turns; index++) {
      const started = performance.now();
      let first: number | undefined;
      await writer.write(
        new TextEncoder().encode(
          `${JSON.stringify({ type: 'user', message: { role: 'user', content: `raw turn ${index}` }, parent_tool_use_id: null, session_id: '' })}\n`,
        ),
      );
      for (;;) {
        const next = await output.next();
        if (next.done) throw new Error('raw CLI ended early');
        const type = (JSON.parse(next.value) as { type: string }).type;
        if (type === 'assistant' && first === undefined) first = performance.now() - started;
        if (type === 'result') break;
      }
      if (index >= warmup) {
        rawFirst.push(first!);
        rawTurn.push(performance.now() - started);
      }
    }
    await writer.close();
    await raw.wait();

    const row = (name: string, samples: number[], baseline: number[], baselineName: string): BenchRow =>
      latencyRow(name, samples, baselineName, baseline, {
        goal: goals.overheadAtMost(50),
        note: (figures) => `overhead ${(figures.p50 - figures.baselineP50).toFixed(1)} ms, n=${turns}`,
      });
    return [
      row('AgentSession send → first assistant message', firstAssistant, rawFirst, 'raw CLI stdin → first assistant line'),
      row('AgentSession send → result (one text turn)', perTurn, rawTurn, 'raw CLI stdin → result line'),
    ];
  } finally {
    await sandbox.terminate();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { formatTable } = await import('./stats.js');
  console.log(formatTable(await runAgentBench({ quick: process.argv.includes('--quick') })));
}
