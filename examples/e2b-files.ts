/**
 * Upload and download files: stream a host file into the sandbox, work on it there, stream the
 * result back to disk, and look around with list and stat (E2B's `files.write`, `files.read`,
 * `files.list`, `files.getInfo`). Streams keep memory flat whatever the file size.
 *   E2B_API_KEY=… npx tsx examples/e2b-files.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

const host = await mkdtemp(join(tmpdir(), 'sandport-e2b-files-'));
try {
  await using sandbox = await provider.create();
  const csv = `city,temperature\n${'Lisbon,21\nOslo,4\nNairobi,25\n'.repeat(1000)}`;
  await writeFile(join(host, 'readings.csv'), csv);

  // Upload: a host file streamed in as it is read (parent directories are created).
  await sandbox.files.write(
    '/tmp/work/in/readings.csv',
    Readable.toWeb(createReadStream(join(host, 'readings.csv'))) as ReadableStream<Uint8Array>,
  );
  await sandbox.files.write('/tmp/work/in/notes.txt', 'small files can be strings or bytes\n');
  const summary = await sandbox.run([
    'python3',
    '-c',
    'import csv, json; rows = list(csv.DictReader(open("/tmp/work/in/readings.csv")));' +
      ' json.dump({"rows": len(rows), "hottest": max(rows, key=lambda r: int(r["temperature"]))["city"]}, open("/tmp/work/summary.json", "w"))',
  ]);
  if (summary.exitCode !== 0) throw new Error(summary.stderr);

  // Download: a sandbox file streamed to a host file, and a small one read whole.
  await (await sandbox.files.readStream('/tmp/work/in/readings.csv')).pipeTo(Writable.toWeb(createWriteStream(join(host, 'copy.csv'))));
  console.log(
    `round trip intact: ${(await readFile(join(host, 'copy.csv'), 'utf8')) === csv} (${(await stat(join(host, 'copy.csv'))).size} bytes)`,
  );
  console.log(`summary: ${await sandbox.files.readText('/tmp/work/summary.json')}`);

  for (const entry of await sandbox.files.list('/tmp/work/in')) console.log(`listed: ${entry.name} ${entry.type} ${entry.size} bytes`);
  const info = await sandbox.files.stat('/tmp/work/summary.json');
  console.log(`stat: ${info.path} ${info.type}, mode ${info.mode.toString(8)}`);
  await sandbox.files.remove('/tmp/work/in', { recursive: true });
  console.log(`removed: ${!(await sandbox.files.exists('/tmp/work/in'))}`);
} finally {
  await rm(host, { recursive: true, force: true });
}
