/**
 * Daytona adapter overhead: each operation through sandport next to the same work done directly
 * with `@daytonaio/sdk`, against the same Daytona emulator, in the same run. Target ratio ≤ 1.1.
 *   npx tsx bench/daytona.ts [--quick]
 * A command through the adapter is a session command whose followed logs are read (stdout and
 * stderr apart, streamed); its baseline is that same sequence of SDK calls (createSession,
 * executeSessionCommand async, getSessionCommandLogs with callbacks, getSessionCommand,
 * deleteSession). The SDK's one-shot `executeCommand` (buffered, outputs merged) is shown too,
 * for scale. The emulator runs in a child process (its sandboxes and CPU are not in the timed
 * process). Needs what the local provider needs (bubblewrap) and the emulator's default image
 * (scripts/build-daytona-images.sh).
 */
import { Daytona, type Sandbox as DaytonaSdkSandbox } from '@daytonaio/sdk';
import { createDaytonaSandboxProvider } from '../adapters/daytona/index.js';
import { spawnDaytonaEmulator } from '../test/emulators/daytona/spawn.js';
import { formatTable, goals, latencyRow, paired, type TimedBenchRow } from './stats.js';

export type DaytonaBenchRow = TimedBenchRow;

function row(name: string, samples: number[], baselineName: string, baseline: number[], note?: string): DaytonaBenchRow {
  return latencyRow(name, samples, baselineName, baseline, { goal: goals.ratioAtMost(1.1, '≤ 1.1'), note });
}

/** The adapter's exec done by hand with the SDK: a session, an async command, its followed logs, its exit code. */
async function sessionRun(sandbox: DaytonaSdkSandbox, command: string, id: number): Promise<number> {
  const sessionId = `bench-${process.pid}-${id}`;
  await sandbox.process.createSession(sessionId);
  try {
    const { cmdId } = await sandbox.process.executeSessionCommand(sessionId, { command, runAsync: true });
    let bytes = 0;
    await sandbox.process.getSessionCommandLogs(
      sessionId,
      cmdId!,
      (chunk) => (bytes += chunk.length),
      (chunk) => (bytes += chunk.length),
    );
    for (;;) {
      const status = await sandbox.process.getSessionCommand(sessionId, cmdId!);
      if (typeof status.exitCode === 'number') return bytes;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await sandbox.process.deleteSession(sessionId);
  }
}

export async function runDaytonaBench(options: { quick?: boolean } = {}): Promise<DaytonaBenchRow[]> {
  const rounds = options.quick ? 5 : 20;
  const emulator = await spawnDaytonaEmulator();
  const config = { apiKey: emulator.apiKey, apiUrl: emulator.url, otelEnabled: false };
  const provider = createDaytonaSandboxProvider({ apiKey: emulator.apiKey, apiUrl: emulator.url });
  const client = new Daytona(config);
  const rows: DaytonaBenchRow[] = [];
  let sessions = 0;
  try {
    // Warm both paths (the image, the HTTP agents' connections).
    await (await provider.create()).terminate();
    await (await client.create()).delete();

    const [creates, rawCreates] = await paired(
      rounds,
      async () => (await provider.create()).terminate(),
      async () => (await client.create({ autoStopInterval: 0, ttlMinutes: 5 })).delete(),
    );
    rows.push(row('create + terminate', creates, 'daytona.create + delete', rawCreates));

    const sandbox = await provider.create();
    const raw = await client.create({ autoStopInterval: 0, ttlMinutes: 30 });
    try {
      await sandbox.run(['true']);
      await sessionRun(raw, 'true', sessions++);
      const [execs, rawExecs] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => sessionRun(raw, 'true', sessions++),
      );
      rows.push(row('run `true` to its exit code', execs, 'session command + followed logs', rawExecs, 'includes the kill-marker wrapper'));
      const [, oneShot] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => raw.process.executeCommand('true'),
      );
      rows.push(
        latencyRow('run `true` (for scale)', execs, 'executeCommand (buffered, merged output)', oneShot, {
          goal: goals.none,
          note: 'a different call (buffered, outputs merged): for scale, not a target',
        }),
      );

      const [echoes, rawEchoes] = await paired(
        rounds * 2,
        () => sandbox.run(['head', '-c', '1048576', '/dev/zero']),
        () => sessionRun(raw, 'head -c 1048576 /dev/zero', sessions++),
      );
      rows.push(row('run with 1 MiB of stdout', echoes, 'session command + followed logs', rawEchoes));

      const payload = Buffer.alloc(1024 * 1024, 7);
      const [writes, rawWrites] = await paired(
        rounds * 2,
        () => sandbox.files.write('/tmp/bench.bin', payload),
        () => raw.fs.uploadFile(payload, '/tmp/bench-raw.bin'),
      );
      rows.push(row('files.write 1 MiB', writes, 'fs.uploadFile', rawWrites));
      const [reads, rawReads] = await paired(
        rounds * 2,
        () => sandbox.files.read('/tmp/bench.bin'),
        () => raw.fs.downloadFile('/tmp/bench-raw.bin'),
      );
      rows.push(row('files.read 1 MiB', reads, 'fs.downloadFile', rawReads));
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
  const rows = await runDaytonaBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
