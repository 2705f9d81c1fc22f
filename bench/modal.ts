/**
 * Modal adapter overhead: each operation through sandport next to the same call made directly
 * with the `modal` SDK, against the same local emulator, in the same run. Target ratio ≤ 1.1.
 *   npx tsx bench/modal.ts [--quick]
 * Needs what the local provider needs (bubblewrap; see scripts/setup-local.sh).
 */
import { ModalClient, type App, type Image, type Sandbox as ModalSdkSandbox } from 'modal';
import { createModalSandboxProvider } from '../adapters/modal/index.js';
import { startModalEmulator } from '../test/emulators/modal/index.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

/** A bench row; `p50Ms`/`p95Ms`/`baselineP50Ms` repeat the latency figures under unit-bearing names. */
export type ModalBenchRow = TimedBenchRow;

/** Every row aims at ≤ 1.1× the raw SDK call. */
function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): ModalBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

async function drain(process: {
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  wait(): Promise<number>;
}): Promise<number> {
  const [code] = await Promise.all([
    process.wait(),
    new Response(process.stdout).arrayBuffer(),
    new Response(process.stderr).arrayBuffer(),
  ]);
  return code;
}

export async function runModalBench(options: { quick?: boolean } = {}): Promise<ModalBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const emulator = await startModalEmulator();
  const previousUrl = process.env.MODAL_SERVER_URL;
  process.env.MODAL_SERVER_URL = emulator.url;
  const client = new ModalClient({ tokenId: 'ak-bench', tokenSecret: 'as-bench', logLevel: 'error' });
  const provider = createModalSandboxProvider({ client, appName: 'sandport-bench', defaultImage: 'python:3.13-slim' });
  const rows: ModalBenchRow[] = [];
  try {
    const app: App = await client.apps.fromName('sandport-bench', { createIfMissing: true });
    const image: Image = client.images.fromRegistry('python:3.13-slim');
    // Warm both paths (app lookup, image, auth token, router channel).
    await (await provider.create()).terminate();
    await (await client.sandboxes.create(app, image)).terminate();

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => (await client.sandboxes.create(app, image)).terminate(),
    );
    rows.push(row('create + terminate', creates, 'sandboxes.create + terminate', rawCreates));

    const sandbox = await provider.create();
    const raw: ModalSdkSandbox = await client.sandboxes.create(app, image);
    try {
      await sandbox.run(['true']);
      await drain(await raw.exec(['true'], { mode: 'binary' }));
      const [execs, rawExecs] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        async () => drain(await raw.exec(['true'], { mode: 'binary' })),
      );
      rows.push(row('run `true` to its exit code', execs, 'exec + read stdio + wait', rawExecs, 'includes the kill-marker wrapper'));

      const [echoes, rawEchoes] = await paired(
        rounds * 2,
        () => sandbox.run(['sh', '-c', 'head -c 1048576 /dev/zero']),
        async () => drain(await raw.exec(['sh', '-c', 'head -c 1048576 /dev/zero'], { mode: 'binary' })),
      );
      rows.push(row('run with 1 MiB of stdout', echoes, 'exec + read stdio + wait', rawEchoes));

      const payload = new Uint8Array(256 * 1024).fill(7);
      const [writes, rawWrites] = await paired(
        rounds,
        () => sandbox.files.write('/tmp/bench.bin', payload),
        () => raw.filesystem.writeBytes(payload, '/tmp/bench.bin'),
      );
      rows.push(row('files.write 256 KiB', writes, 'filesystem.writeBytes', rawWrites));
      const [reads, rawReads] = await paired(
        rounds,
        () => sandbox.files.read('/tmp/bench.bin'),
        () => raw.filesystem.readBytes('/tmp/bench.bin'),
      );
      rows.push(row('files.read 256 KiB', reads, 'filesystem.readBytes', rawReads));
      const [tags, rawTags] = await paired(
        rounds,
        () => sandbox.getTags(),
        () => raw.getTags(),
      );
      rows.push(row('getTags', tags, 'sandbox.getTags', rawTags));
    } finally {
      await sandbox.terminate();
      await raw.terminate();
    }
  } finally {
    client.close();
    if (previousUrl === undefined) delete process.env.MODAL_SERVER_URL;
    else process.env.MODAL_SERVER_URL = previousUrl;
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runModalBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
