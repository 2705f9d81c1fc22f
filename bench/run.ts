/**
 * `npm run bench`: every benchmark, each operation next to its raw baseline in the same run.
 * Pass `--quick` for smaller sizes. Adapter benches run when their prerequisites are present.
 */
import { existsSync } from 'node:fs';
import { formatTable, type BenchRow } from './stats.js';
import { runLocalBench } from './local.js';

const quick = process.argv.includes('--quick');
const sections: Array<[string, () => Promise<BenchRow[]>]> = [['local provider', () => runLocalBench({ quick })]];
for (const [name, file, exportName] of [
  ['docker provider', './docker.js', 'runDockerBench'],
  ['egress allowlist (local provider)', './egress.js', 'runEgressBench'],
  ['modal adapter (against the emulator)', './modal.js', 'runModalBench'],
  ['e2b adapter (against the emulator)', './e2b.js', 'runE2bBench'],
  ['fly adapter (against the emulator)', './fly.js', 'runFlyBench'],
  ['daytona adapter (against the emulator)', './daytona.js', 'runDaytonaBench'],
  ['vercel adapter (against the emulator)', './vercel.js', 'runVercelBench'],
  ['kubernetes adapter (against the emulator, next to kubectl exec)', './kubernetes.js', 'runKubernetesBench'],
  ['cloudflare adapter (against the bridge emulator, 0.12 and 0.13)', './cloudflare.js', 'runCloudflareBench'],
  ['AgentSession', './agent.js', 'runAgentBench'],
  ['warm pool (local and the Modal emulator)', './pool.js', 'runPoolBench'],
] as const) {
  if (!existsSync(new URL(file.replace('.js', '.ts'), import.meta.url))) continue;
  sections.push([
    name,
    async () => {
      const module = (await import(file)) as Record<string, (options?: { quick?: boolean }) => Promise<BenchRow[]>>;
      return module[exportName]!({ quick });
    },
  ]);
}
for (const [name, run] of sections) {
  try {
    const rows = await run();
    console.log(`\n### ${name}\n\n${formatTable(rows)}`);
  } catch (error) {
    console.log(`\n### ${name}\n\nskipped: ${error instanceof Error ? error.message : String(error)}`);
  }
}
