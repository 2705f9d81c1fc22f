/**
 * Fly adapter overhead: each operation through sandport next to the same Machines API calls
 * made with plain `fetch`, against the same Fly emulator, in the same run. Target ratio ≤ 1.1.
 * A `run` is one exec too, but one that starts the command detached under the in-machine runner
 * (output to files, the exit polled there) and brings the exit back: the price of commands that
 * may outlive Fly's exec timeout, with stdin as a stream; its row shows that cost.
 *   npx tsx bench/fly.ts [--quick]
 * The emulator runs in a child process (its machines, buffers and CPU are not in the timed process).
 */
import { randomBytes } from 'node:crypto';
import { createFlySandboxProvider, planFlyCreate } from '../adapters/fly/index.js';
import { createSandboxOptionsSchema } from '../src/kit/index.js';
import { spawnFlyEmulator } from '../test/emulators/fly/spawn.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

export type FlyBenchRow = TimedBenchRow;

function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): FlyBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

export async function runFlyBench(options: { quick?: boolean } = {}): Promise<FlyBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const emulator = await spawnFlyEmulator();
  const provider = createFlySandboxProvider({ apiHostname: emulator.url, token: emulator.token, org: 'personal' });
  const api = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${emulator.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  // The same machine config the adapter sends (its keeper included), made by hand.
  const config = planFlyCreate(createSandboxOptionsSchema.parse({})).config;
  const rawCreate = async () => {
    const app = `bench-${randomBytes(6).toString('hex')}`;
    await api('POST', '/v1/apps', { app_name: app, org_slug: 'personal', network: `${app}-net` });
    const machine = (await api('POST', `/v1/apps/${app}/machines`, { config })) as { id: string };
    await api('GET', `/v1/apps/${app}/machines/${machine.id}/wait?state=started&timeout=60`);
    return { app, id: machine.id };
  };
  const rawDestroy = async ({ app, id }: { app: string; id: string }) => {
    await api('DELETE', `/v1/apps/${app}/machines/${id}?force=true`);
    await api('DELETE', `/v1/apps/${app}`);
  };
  const exec = (target: { app: string; id: string }, command: string[], stdin?: string) =>
    api('POST', `/v1/apps/${target.app}/machines/${target.id}/exec`, { command, timeout: 60, ...(stdin === undefined ? {} : { stdin }) });
  const rows: FlyBenchRow[] = [];
  try {
    await (await provider.create()).terminate();
    await rawDestroy(await rawCreate());

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => rawDestroy(await rawCreate()),
    );
    rows.push(row('create + terminate', creates, 'app + machine + wait, deletes', rawCreates));

    const sandbox = await provider.create();
    const raw = await rawCreate();
    try {
      const [runs, rawRuns] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => exec(raw, ['true']),
      );
      rows.push(
        row(
          'run `true` to its exit code',
          runs,
          'one exec',
          rawRuns,
          'one exec: the detached start under the runner, which waits for the exit',
        ),
      );

      const payload = new Uint8Array(1024 * 1024).fill(7);
      const encoded = Buffer.from(payload).toString('base64');
      const [writes, rawWrites] = await paired(
        rounds * 2,
        () => sandbox.files.write('/tmp/bench.bin', payload),
        () => exec(raw, ['/bin/sh', '-c', 'base64 -d > /tmp/bench-raw.bin'], encoded),
      );
      rows.push(row('files.write 1 MiB', writes, 'exec with base64 stdin', rawWrites));

      const [reads, rawReads] = await paired(
        rounds * 2,
        () => sandbox.files.read('/tmp/bench.bin'),
        async () => Buffer.from(((await exec(raw, ['base64', '-w0', '/tmp/bench-raw.bin'])) as { stdout: string }).stdout, 'base64'),
      );
      rows.push(row('files.read 1 MiB', reads, 'exec of base64', rawReads, 'two execs: the size check, then the slice'));
    } finally {
      await sandbox.terminate();
      await rawDestroy(raw);
    }
  } finally {
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runFlyBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
