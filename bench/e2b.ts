/**
 * E2B adapter overhead: each operation through sandport next to the same call made directly
 * with the `e2b` SDK, against the same E2B emulator, in the same run. Target ratio ≤ 1.1.
 *   npx tsx bench/e2b.ts [--quick]
 * The emulator runs in a child process (its sandboxes, buffers and CPU are not in the timed
 * process, as with the real service). Needs what the local provider needs (bubblewrap; see
 * scripts/setup-local.sh) and the emulator's base template (scripts/build-e2b-images.sh).
 */
import { Sandbox as E2bSdkSandbox } from 'e2b';
import { createE2bSandboxProvider } from '../adapters/e2b/index.js';
import { spawnE2bEmulator } from '../test/emulators/e2b/spawn.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

/** A bench row; `p50Ms`/`p95Ms`/`baselineP50Ms` repeat the latency figures under unit-bearing names. */
export type E2bBenchRow = TimedBenchRow;

/** Every row aims at ≤ 1.1× the raw SDK call. */
function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): E2bBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

const environment = ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_DOMAIN', 'E2B_API_KEY'] as const;

export async function runE2bBench(options: { quick?: boolean } = {}): Promise<E2bBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const emulator = await spawnE2bEmulator();
  // Both paths find the emulator the way an E2B user's code would find E2B: through the environment.
  const previous = Object.fromEntries(environment.map((name) => [name, process.env[name]]));
  Object.assign(process.env, {
    E2B_API_URL: emulator.url,
    E2B_SANDBOX_URL: emulator.sandboxUrl,
    E2B_DOMAIN: emulator.domain,
    E2B_API_KEY: 'e2b_bench',
  });
  const provider = createE2bSandboxProvider();
  const rows: E2bBenchRow[] = [];
  try {
    // Warm both paths (the template, the HTTP agents' connections).
    await (await provider.create()).terminate();
    await (await E2bSdkSandbox.create()).kill();

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => (await E2bSdkSandbox.create()).kill(),
    );
    rows.push(row('create + terminate', creates, 'Sandbox.create + kill', rawCreates));

    const sandbox = await provider.create();
    const raw = await E2bSdkSandbox.create();
    try {
      await sandbox.run(['true']);
      await raw.commands.run('true');
      const [execs, rawExecs] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => raw.commands.run('true'),
      );
      rows.push(row('run `true` to its exit code', execs, 'commands.run', rawExecs, 'includes the kill-marker wrapper'));

      const [echoes, rawEchoes] = await paired(
        rounds * 2,
        () => sandbox.run(['head', '-c', '1048576', '/dev/zero']),
        () => raw.commands.run('head -c 1048576 /dev/zero'),
      );
      rows.push(row('run with 1 MiB of stdout', echoes, 'commands.run', rawEchoes));

      const payload = new Uint8Array(1024 * 1024).fill(7);
      const [writes, rawWrites] = await paired(
        rounds * 2,
        () => sandbox.files.write('/tmp/bench.bin', payload),
        () => raw.files.write('/tmp/bench-raw.bin', payload.buffer),
      );
      rows.push(row('files.write 1 MiB', writes, 'files.write', rawWrites));
      const [reads, rawReads] = await paired(
        rounds * 2,
        () => sandbox.files.read('/tmp/bench.bin'),
        () => raw.files.read('/tmp/bench-raw.bin', { format: 'bytes' }),
      );
      rows.push(row('files.read 1 MiB', reads, "files.read({ format: 'bytes' })", rawReads));
    } finally {
      await sandbox.terminate();
      await raw.kill();
    }
  } finally {
    for (const name of environment) {
      if (previous[name] === undefined) delete process.env[name];
      else process.env[name] = previous[name];
    }
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runE2bBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
