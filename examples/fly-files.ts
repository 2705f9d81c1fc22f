/**
 * Files on a Fly Machine: write a string and a stream, read them back byte for byte, list and
 * stat a directory, remove. The adapter moves files through Fly's exec in slices, streamed on
 * this side, so memory stays flat whatever the size.
 *   FLY_API_TOKEN=… FLY_ORG=my-org npx tsx examples/fly-files.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { createHash } from 'node:crypto';
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/fly')).createFlySandboxProvider();

await using sandbox = await provider.create();
await sandbox.files.write('/tmp/work/notes.txt', 'files can be strings, bytes or streams\n');

// 6 MiB of every byte value, as a stream: written as it is produced.
const block = new Uint8Array(256 * 1024).map((_, index) => index % 256);
let left = 24;
const data = new ReadableStream<Uint8Array>({
  pull(controller) {
    if (left-- === 0) return controller.close();
    controller.enqueue(block);
  },
});
await sandbox.files.write('/tmp/work/blob.bin', data);
const back = await sandbox.files.read('/tmp/work/blob.bin');
const expected = createHash('sha256');
for (let index = 0; index < 24; index++) expected.update(block);
console.log(`round trip intact: ${createHash('sha256').update(back).digest('hex') === expected.digest('hex')} (${back.byteLength} bytes)`);

for (const entry of await sandbox.files.list('/tmp/work')) console.log(`listed: ${entry.name} ${entry.type} ${entry.size} bytes`);
const info = await sandbox.files.stat('/tmp/work/notes.txt');
console.log(`stat: ${info.path} ${info.type}, mode ${info.mode.toString(8)}`);
await sandbox.files.remove('/tmp/work', { recursive: true });
console.log(`removed: ${!(await sandbox.files.exists('/tmp/work'))}`);
