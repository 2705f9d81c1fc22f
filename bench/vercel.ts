/**
 * Vercel adapter overhead: each operation through sandport next to the same call made directly
 * with the `@vercel/sandbox` SDK, against the same Vercel emulator, in the same run. Target ratio ≤ 1.1.
 *   npx tsx bench/vercel.ts [--quick]
 * The emulator runs in a child process (its sessions, buffers and CPU are not in the timed
 * process, as with the real service). Needs what the local provider needs (bubblewrap; see
 * scripts/setup-local.sh) and the emulator's image (scripts/build-vercel-images.sh).
 *
 * The baseline of a command is what streams its output with the SDK: a detached `runCommand`,
 * its `logs()` read to the end, then `wait()` (what the adapter does, under its wrapper). The
 * SDK's one-request form (`runCommand(cmd, args)`, which answers when the command is done) is
 * shown beside it for the record.
 */
import { Sandbox as VercelSdkSandbox } from '@vercel/sandbox';
import { createVercelSandboxProvider } from '../adapters/vercel/index.js';
import { spawnVercelEmulator } from '../test/emulators/vercel/spawn.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

export type VercelBenchRow = TimedBenchRow;

function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): VercelBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

/** A command with its output streamed, straight through the SDK. */
async function streamed(sandbox: VercelSdkSandbox, cmd: string, args: string[]): Promise<number> {
  const command = await sandbox.runCommand({ cmd, args, detached: true });
  const output: string[] = [];
  for await (const line of command.logs()) output.push(line.data);
  return (await command.wait()).exitCode;
}

export async function runVercelBench(options: { quick?: boolean } = {}): Promise<VercelBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const emulator = await spawnVercelEmulator();
  const credentials = { token: emulator.token, teamId: emulator.teamId, projectId: emulator.projectId, fetch: emulator.fetch };
  const provider = createVercelSandboxProvider(credentials);
  const rows: VercelBenchRow[] = [];
  try {
    // Warm both paths (the image, the HTTP agents' connections).
    await (await provider.create()).terminate();
    await (await VercelSdkSandbox.create(credentials)).delete();

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => (await VercelSdkSandbox.create(credentials)).delete(),
    );
    rows.push(row('create + terminate', creates, 'Sandbox.create + delete', rawCreates));

    const sandbox = await provider.create();
    const raw = await VercelSdkSandbox.create(credentials);
    try {
      await sandbox.run(['true']);
      await streamed(raw, 'true', []);
      const [execs, rawExecs] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => streamed(raw, 'true', []),
      );
      rows.push(
        row('run `true` to its exit code', execs, 'runCommand detached + logs + wait', rawExecs, 'includes the kill-marker wrapper'),
      );
      const [execsAgain, oneRequest] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => raw.runCommand('true'),
      );
      rows.push(
        latencyRow('run `true` to its exit code', execsAgain, 'runCommand (one request, no streaming)', oneRequest, {
          goal: goals.none,
          note: 'for the record: the SDK form that cannot stream',
        }),
      );

      const [echoes, rawEchoes] = await paired(
        rounds * 2,
        () => sandbox.run(['head', '-c', '1048576', '/dev/zero']),
        () => streamed(raw, 'head', ['-c', '1048576', '/dev/zero']),
      );
      rows.push(row('run with 1 MiB of stdout', echoes, 'runCommand detached + logs + wait', rawEchoes));

      const payload = new Uint8Array(1024 * 1024).fill(7);
      const [writes, rawWrites] = await paired(
        rounds * 2,
        () => sandbox.files.write('/tmp/bench.bin', payload),
        () => raw.writeFiles([{ path: '/tmp/bench-raw.bin', content: payload }]),
      );
      rows.push(
        row('files.write 1 MiB', writes, 'writeFiles', rawWrites, 'a staged part and one join command: keeps modes, streams any size'),
      );
      const [reads, rawReads] = await paired(
        rounds * 2,
        () => sandbox.files.read('/tmp/bench.bin'),
        () => raw.readFileToBuffer({ path: '/tmp/bench-raw.bin' }),
      );
      rows.push(row('files.read 1 MiB', reads, 'readFileToBuffer', rawReads));
    } finally {
      await sandbox.terminate();
      await raw.delete();
    }
  } finally {
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runVercelBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
