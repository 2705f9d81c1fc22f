/**
 * Warm pools: `pool.acquire()` from a warm pool next to `provider.create()` on the same provider,
 * in the same run, on the local provider and on the Modal adapter against its emulator (in a
 * child process, so its work does not share the measuring event loop). Target: acquire p50 ≤ 1 ms.
 *   npx tsx bench/pool.ts [--quick]
 * Needs what the local provider needs (bubblewrap; see scripts/setup-local.sh).
 */
import { ModalClient } from 'modal';
import { createLocalSandboxProvider } from '../adapters/local/index.js';
import { createModalSandboxProvider } from '../adapters/modal/index.js';
import { createSandboxPool } from '../src/pool/index.js';
import type { Sandbox, SandboxProvider } from '../src/spec/sandbox.js';
import { spawnModalEmulator } from '../test/emulators/modal/spawn.js';
import { formatTable, goals, latencyRow, type TimedBenchRow } from './stats.js';

/** A bench row; `p50Ms`/`p95Ms`/`baselineP50Ms` repeat the latency figures under unit-bearing names. */
export type PoolBenchRow = TimedBenchRow;

async function timed<T>(body: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await body();
  return [performance.now() - started, value];
}

/**
 * Rounds alternate: one `create` (timed; its terminate is not), then one `acquire` from a pool
 * that is warm again (timed; the wait for warmth and the terminate are not), so drift on a shared
 * machine hits both alike.
 */
async function measure(provider: SandboxProvider, label: string, rounds: number): Promise<PoolBenchRow> {
  const pool = createSandboxPool(provider, { size: 2, concurrency: 2 });
  const creates: number[] = [];
  const acquires: number[] = [];
  const handedOut: Sandbox[] = [];
  try {
    // Warm both paths (an image, an app lookup, a token, JIT).
    await (await provider.create()).terminate();
    await pool.waitUntilWarm();
    await (await pool.acquire()).terminate();
    for (let round = 0; round < rounds; round++) {
      const [createMs, created] = await timed(() => provider.create());
      creates.push(createMs);
      await created.terminate();
      await pool.waitUntilWarm();
      const [acquireMs, acquired] = await timed(() => pool.acquire());
      acquires.push(acquireMs);
      handedOut.push(acquired);
      await acquired.terminate();
    }
  } finally {
    await pool.close();
    await Promise.all(handedOut.map((sandbox) => sandbox.terminate()));
  }
  return latencyRow(`pool.acquire, warm (${label})`, acquires, `provider.create (${label})`, creates, {
    goal: goals.p50AtMost(1, 'acquire p50 ≤ 1 ms'),
    note: (row) => `p50 ${(row.p50 * 1000).toFixed(0)} µs: ${(row.baselineP50 / row.p50).toFixed(0)}× faster than create`,
  });
}

export async function runPoolBench(options: { quick?: boolean } = {}): Promise<PoolBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const rows: PoolBenchRow[] = [await measure(createLocalSandboxProvider(), 'local', rounds)];
  const emulator = await spawnModalEmulator();
  const previousUrl = process.env.MODAL_SERVER_URL;
  process.env.MODAL_SERVER_URL = emulator.url;
  const client = new ModalClient({ tokenId: 'ak-bench', tokenSecret: 'as-bench', logLevel: 'error' });
  try {
    const provider = createModalSandboxProvider({ client, appName: 'sandport-pool-bench', defaultImage: 'python:3.13-slim' });
    rows.push(await measure(provider, 'modal emulator', rounds));
  } finally {
    client.close();
    if (previousUrl === undefined) delete process.env.MODAL_SERVER_URL;
    else process.env.MODAL_SERVER_URL = previousUrl;
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runPoolBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
