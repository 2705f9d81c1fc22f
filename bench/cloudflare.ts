/**
 * Cloudflare adapter overhead: each operation through sandport next to the same bridge routes
 * called with plain `fetch`, against the same bridge emulator, in the same run, for bridge 0.12
 * (`/exec` with server-sent events) and 0.13 (`/processes`). Target ratio ≤ 1.1 where the adapter
 * makes the same calls.
 *   npx tsx bench/cloudflare.ts [--quick]
 * The emulator runs in a child process (its containers, buffers and CPU are not in the timed process).
 */
import { createCloudflareSandboxProvider, type CloudflareBridgeVersion } from '../adapters/cloudflare/index.js';
import { spawnCloudflareBridgeEmulator } from '../test/emulators/cloudflare/spawn.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

export type CloudflareBenchRow = TimedBenchRow;

function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): CloudflareBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

async function benchVersion(version: CloudflareBridgeVersion, rounds: number): Promise<CloudflareBenchRow[]> {
  const emulator = await spawnCloudflareBridgeEmulator({ version });
  const provider = createCloudflareSandboxProvider({ url: emulator.url, token: emulator.token });
  const headers = { authorization: `Bearer ${emulator.token}` };
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const raw = body instanceof Uint8Array;
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': raw ? 'application/octet-stream' : 'application/json' },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response;
  };
  /** One command to its end, read the way each bridge version serves it. */
  const exec = async (id: string, argv: string[]) => {
    if (version === '0.12') return (await call('POST', `/v1/sandbox/${id}/exec`, { argv })).text();
    const status = (await (await call('POST', `/v1/sandbox/${id}/processes`, { argv })).json()) as { id: string };
    return (await call('GET', `/v1/sandbox/${id}/processes/${status.id}/logs?replay=true&follow=true`)).text();
  };
  const rawCreate = async () => {
    const { id } = (await (await call('POST', '/v1/sandbox')).json()) as { id: string };
    // The adapter's first command (its marker) is what starts the container: the same here.
    await exec(id, ['/bin/sh', '-c', 'printf %s "$1" > /tmp/raw-marker', 'raw', id]);
    return id;
  };
  const rawDestroy = async (id: string) => void (await call('DELETE', `/v1/sandbox/${id}`)).body?.cancel();
  const suffix = ` (bridge ${version})`;
  const rows: CloudflareBenchRow[] = [];
  try {
    await (await provider.create()).terminate();
    await rawDestroy(await rawCreate());

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => rawDestroy(await rawCreate()),
    );
    rows.push(row(`create + terminate${suffix}`, creates, 'new id, one command, delete', rawCreates));

    const sandbox = await provider.create();
    const raw = await rawCreate();
    try {
      const [runs, rawRuns] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => exec(raw, ['true']),
      );
      rows.push(
        row(`run \`true\` to its exit code${suffix}`, runs, 'one command', rawRuns, 'the kit wrapper runs first (cwd and program checks)'),
      );

      const payload = new Uint8Array(1024 * 1024).fill(7);
      const [writes, rawWrites] = await paired(
        rounds * 2,
        () => sandbox.files.write('/workspace/bench.bin', payload),
        async () => void (await call('PUT', `/v1/sandbox/${raw}/file/workspace/bench-raw.bin`, payload)).body?.cancel(),
      );
      rows.push(row(`files.write 1 MiB${suffix}`, writes, 'one PUT', rawWrites));

      const [reads, rawReads] = await paired(
        rounds * 2,
        () => sandbox.files.read('/workspace/bench.bin'),
        async () => new Uint8Array(await (await call('GET', `/v1/sandbox/${raw}/file/workspace/bench-raw.bin`)).arrayBuffer()),
      );
      rows.push(row(`files.read 1 MiB${suffix}`, reads, 'one GET', rawReads));
    } finally {
      await sandbox.terminate();
      await rawDestroy(raw);
    }
  } finally {
    await emulator.close();
  }
  return rows;
}

export async function runCloudflareBench(options: { quick?: boolean } = {}): Promise<CloudflareBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  return [...(await benchVersion('0.12', rounds)), ...(await benchVersion('0.13', rounds))];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runCloudflareBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
