/**
 * Local provider benchmarks, each next to a raw baseline measured in the same run.
 *   npx tsx bench/local.ts
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createLocalSandboxProvider } from '../adapters/local/index.js';
import { figureRow, formatTable, goals, latencyRow, paired, repeatingSource, throughputRow, timeRepeated, type BenchRow } from './stats.js';

const MiB = 1024 * 1024;

function runRaw(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}`))));
  });
}

/** Reads a child's stdout to the end and returns the byte count (the raw pipe baseline). */
function rawPipe(bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('head', ['-c', String(bytes), '/dev/zero'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let total = 0;
    child.stdout.on('data', (chunk: Buffer) => (total += chunk.length));
    child.on('error', reject);
    child.on('close', () => resolve(total));
  });
}

const oneShotBwrap = [
  '--unshare-all',
  '--die-with-parent',
  '--new-session',
  '--ro-bind',
  '/usr',
  '/usr',
  '--symlink',
  'usr/bin',
  '/bin',
  '--symlink',
  'usr/lib',
  '/lib',
  '--symlink',
  'usr/lib64',
  '/lib64',
  '--proc',
  '/proc',
  '--dev',
  '/dev',
  '--tmpfs',
  '/tmp',
  '--',
  '/usr/bin/true',
];

export async function runLocalBench(options: { quick?: boolean } = {}): Promise<BenchRow[]> {
  const rounds = options.quick ? 10 : 40;
  const provider = createLocalSandboxProvider();
  const rows: BenchRow[] = [];
  // Warm up: the first create probes the host and the first exec pages in the binaries.
  const warm = await provider.create({ network: 'block' });
  await warm.run(['true']);
  await warm.terminate();
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', 'bwrap'] : ['bwrap'];

  const sandbox = await provider.create({ network: 'block' });
  const exec = await timeRepeated(rounds, () => sandbox.run(['true']));
  const raw = await timeRepeated(rounds, () => runRaw(asNobody[0]!, [...asNobody.slice(1), ...oneShotBwrap]));
  rows.push(
    latencyRow('exec `true` on a live sandbox', exec, 'one-shot `bwrap --unshare-all … true`', raw, { goal: goals.ratioAtMost(1.5) }),
  );

  // A terminal is util-linux `script` and a pty inside the sandbox: against the same `script`
  // run raw on the host.
  const pty = { cols: 80, rows: 24 };
  const ptyExec = await timeRepeated(rounds, () => sandbox.run(['true'], { pty }));
  const rawScript = await timeRepeated(rounds, () => runRaw('script', ['-q', '-e', '-c', 'true', '/dev/null']));
  rows.push(latencyRow('exec `true` on a pty', ptyExec, 'raw `script -qec true` on the host', rawScript, { goal: goals.ratioAtMost(2) }));

  // Watching: a change made by one exec, seen as an event, against the same exec unwatched.
  await sandbox.files.mkdir('/tmp/watched');
  const watch = await sandbox.files.watch!('/tmp/watched');
  const events = watch[Symbol.asyncIterator]();
  let touched = 0;
  const [seen, unwatched] = await paired(
    rounds,
    async () => {
      const path = `/tmp/watched/f${touched++}`;
      await sandbox.run(['touch', path]);
      for (;;) {
        const next = await events.next();
        if (next.done) throw new Error('the watch ended');
        if (next.value.path === path) break;
      }
    },
    () => sandbox.run(['touch', '/tmp/unwatched']),
  );
  await watch.close();
  rows.push(
    latencyRow('`touch` by exec until its watch event', seen, 'the same `touch`, unwatched', unwatched, { goal: goals.ratioAtMost(2) }),
  );

  const creates: number[] = [];
  const terminates: number[] = [];
  for (let index = 0; index < rounds; index++) {
    let started = performance.now();
    const created = await provider.create({ network: 'block' });
    creates.push(performance.now() - started);
    started = performance.now();
    await created.terminate();
    terminates.push(performance.now() - started);
  }
  rows.push(latencyRow('create (network blocked, ready to exec)', creates, 'one-shot bwrap', raw, { goal: goals.p50AtMost(40) }));
  rows.push(latencyRow('terminate', terminates, 'one-shot bwrap', raw, { goal: goals.p50AtMost(20) }));

  const netCreates = await timeRepeated(Math.ceil(rounds / 4), async () => (await provider.create()).terminate());
  rows.push(latencyRow('create + terminate (outbound network, slirp4netns)', netCreates, 'one-shot bwrap', raw, { goal: goals.none }));

  // Throughput: 1 GiB through stdout, fast reader, against a raw pipe into Node.
  const total = (options.quick ? 256 : 1024) * MiB;
  const throughput = async () => {
    const process = await sandbox.exec(['head', '-c', String(total), '/dev/zero']);
    void process.stderr.cancel();
    let received = 0;
    for await (const chunk of process.stdout) received += chunk.byteLength;
    await process.wait();
    if (received !== total) throw new Error(`short read ${received}`);
  };
  const sandboxTimes = await timeRepeated(3, throughput);
  const rawTimes = await timeRepeated(3, () => rawPipe(total));
  rows.push(
    throughputRow(`${total / MiB} MiB through stdout`, total / MiB, sandboxTimes, 'raw pipe into Node', rawTimes, {
      goal: goals.ratioAtLeast(0.5),
    }),
  );

  // The same output read by a slow reader: host memory must stay flat.
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
  rows.push(figureRow(`host RSS growth, ${total / MiB} MiB read slowly`, growth, 'MiB', '≤ 64 MiB', growth <= 64));

  // 256 MiB file write and read, against a raw copy on the host disk.
  const fileBytes = (options.quick ? 64 : 256) * MiB;
  const source = () => repeatingSource(fileBytes);
  const writeTimes = await timeRepeated(3, () => sandbox.files.write('/tmp/bench.bin', source()));
  const readTimes = await timeRepeated(3, async () => {
    let received = 0;
    for await (const piece of await sandbox.files.readStream('/tmp/bench.bin')) received += piece.byteLength;
    if (received !== fileBytes) throw new Error('short file read');
  });
  const scratch = mkdtempSync(join(tmpdir(), 'sandport-bench-'));
  const rawWrite = await timeRepeated(3, () => pipeline(source(), createWriteStream(join(scratch, 'raw.bin'))));
  const rawRead = await timeRepeated(3, async () => {
    for await (const piece of createReadStream(join(scratch, 'raw.bin'))) void piece;
  });
  rmSync(scratch, { recursive: true, force: true });
  rows.push(
    throughputRow(`${fileBytes / MiB} MiB file write`, fileBytes / MiB, writeTimes, 'raw write to host disk', rawWrite, {
      goal: goals.ratioAtLeast(0.5),
    }),
  );
  rows.push(
    throughputRow(`${fileBytes / MiB} MiB file read`, fileBytes / MiB, readTimes, 'raw read from host disk', rawRead, {
      goal: goals.ratioAtLeast(0.5),
    }),
  );
  await sandbox.terminate();

  // 32 sandboxes created and used at once.
  const started = performance.now();
  const many = await Promise.all(Array.from({ length: 32 }, () => provider.create({ network: 'block' })));
  const outputs = await Promise.all(many.map((box, index) => box.run(['/bin/sh', '-c', `echo ${index}`])));
  await Promise.all(many.map((box) => box.terminate()));
  const elapsed = performance.now() - started;
  const allOk = outputs.every((output, index) => output.stdout === `${index}\n`);
  rows.push(figureRow('32 sandboxes created, used, terminated at once', elapsed, 'ms', 'all succeed', allOk));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runLocalBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
