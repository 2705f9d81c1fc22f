/**
 * Kubernetes adapter: each operation through sandport next to the same work done with
 * `kubectl exec` (the machine's kubectl, a second real client) against the same emulator pod, in
 * the same run, plus host memory while 256 MiB of stdout is read slowly (target growth ≤ 64 MiB).
 * kubectl is one process per call, so its start (about a hundred milliseconds of Go runtime and
 * kube config loading) is in its figures: the ratios say what a program saves by holding the
 * client, not that the wire is faster.
 *   npx tsx bench/kubernetes.ts [--quick]
 * The emulator runs in a child process (its pods, buffers and CPU are not in the timed process).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createKubernetesSandboxProvider } from '../adapters/kubernetes/index.js';
import { spawnKubernetesEmulator } from '../test/emulators/kubernetes/spawn.js';
import { figureRow, formatTable, goals, latencyRow, paired, repeatingSource, type BenchRow } from './stats.js';

const MiB = 1024 * 1024;
const kubectl = '/usr/bin/kubectl';

/** Runs kubectl to its exit; resolves with the stdout byte count (the output is not kept). */
function runKubectl(args: string[], input?: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectl, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(bytes) : reject(new Error(`kubectl ${args.join(' ')}: exit ${code}: ${stderr}`))));
    if (input) child.stdin.end(input);
    else child.stdin.end();
  });
}

export async function runKubernetesBench(options: { quick?: boolean } = {}): Promise<BenchRow[]> {
  if (!existsSync(kubectl)) {
    console.warn('skipping the Kubernetes bench: no kubectl at /usr/bin/kubectl');
    return [];
  }
  const rounds = options.quick ? 5 : 20;
  const emulator = await spawnKubernetesEmulator();
  const provider = createKubernetesSandboxProvider({ kubeconfig: emulator.kubeconfigPath, namespace: emulator.namespace });
  const rows: BenchRow[] = [];
  try {
    const sandbox = await provider.create({ timeoutMs: 30 * 60_000 });
    const base = ['--kubeconfig', emulator.kubeconfigPath, '-n', emulator.namespace, 'exec', sandbox.id, '-c', 'sandbox'];
    try {
      await sandbox.run(['true']);
      await runKubectl([...base, '--', 'true']);
      const [runs, rawRuns] = await paired(
        rounds * 2,
        () => sandbox.run(['true']),
        () => runKubectl([...base, '--', 'true']),
      );
      rows.push(latencyRow('run `true`', runs, '`kubectl exec -- true`', rawRuns, { goal: goals.ratioAtMost(1.1, '≤ 1.1') }));

      const [megs, rawMegs] = await paired(
        rounds * 2,
        () => sandbox.run(['head', '-c', String(MiB), '/dev/zero']),
        () => runKubectl([...base, '--', 'head', '-c', String(MiB), '/dev/zero']),
      );
      rows.push(
        latencyRow('run, 1 MiB of stdout', megs, 'kubectl exec, 1 MiB of stdout', rawMegs, { goal: goals.ratioAtMost(1.1, '≤ 1.1') }),
      );

      const fileBytes = 64 * MiB;
      const payload = new Uint8Array(fileBytes).fill(7);
      const [trips, rawTrips] = await paired(
        options.quick ? 2 : 5,
        async () => {
          await sandbox.files.write('/tmp/bench.bin', repeatingSource(fileBytes));
          let read = 0;
          for await (const chunk of await sandbox.files.readStream('/tmp/bench.bin')) read += chunk.byteLength;
          if (read !== fileBytes) throw new Error(`read ${read} bytes`);
        },
        async () => {
          await runKubectl([...base, '-i', '--', 'sh', '-c', 'cat > /tmp/bench-raw.bin'], payload);
          const read = await runKubectl([...base, '--', 'cat', '/tmp/bench-raw.bin']);
          if (read !== fileBytes) throw new Error(`kubectl read ${read} bytes`);
        },
      );
      rows.push(
        latencyRow('64 MiB file: write then read (streamed)', trips, 'kubectl exec -i cat > f, then cat f', rawTrips, {
          goal: goals.ratioAtMost(1.1, '≤ 1.1'),
          note: 'files through exec: the write checks the path and moves nothing; the read checks it first',
        }),
      );

      // 256 MiB of stdout, read slowly: the socket pauses, so host memory stays flat.
      const total = (options.quick ? 64 : 256) * MiB;
      const before = process.memoryUsage().rss;
      let peak = before;
      const slow = await sandbox.exec(['head', '-c', String(total), '/dev/zero']);
      void slow.stderr.cancel();
      let sincePause = 0;
      for await (const chunk of slow.stdout) {
        sincePause += chunk.byteLength;
        if (sincePause >= 16 * MiB) {
          sincePause = 0;
          peak = Math.max(peak, process.memoryUsage().rss);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      await slow.wait();
      const growth = (peak - before) / MiB;
      rows.push(figureRow(`host RSS growth, ${total / MiB} MiB of stdout read slowly`, growth, 'MiB', '≤ 64 MiB', growth <= 64));
    } finally {
      await sandbox.terminate();
    }
  } finally {
    await emulator.close();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runKubernetesBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
