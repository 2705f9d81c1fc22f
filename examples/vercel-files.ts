/**
 * Files in a Vercel Sandbox: text and a 6 MiB binary streamed in (the adapter sends it in 4 MiB
 * parts, so memory stays bounded whatever the size) and out (Vercel's file read streams), then
 * list, stat and remove.
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-files.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

await using sandbox = await provider.create();
await sandbox.files.write('/tmp/work/notes.txt', 'written from the host, read in a sandbox\n');
console.log(`cat: ${(await sandbox.run(['cat', '/tmp/work/notes.txt'])).stdout.trim()}`);

const size = 6 * 1024 * 1024;
const blob = new Uint8Array(size).map((_, index) => (index * 7) % 256);
let offset = 0;
const source = new ReadableStream<Uint8Array>({
  pull(controller) {
    if (offset >= size) return controller.close();
    controller.enqueue(blob.slice(offset, offset + 1024 * 1024));
    offset += 1024 * 1024;
  },
});
await sandbox.files.write('/tmp/work/blob.bin', source);
let received = 0;
let same = true;
for await (const piece of await sandbox.files.readStream('/tmp/work/blob.bin')) {
  for (let index = 0; index < piece.byteLength; index++) if (piece[index] !== blob[received + index]) same = false;
  received += piece.byteLength;
}
console.log(`round trip intact: ${same && received === size} (${received} bytes)`);
for (const entry of await sandbox.files.list('/tmp/work')) console.log(`listed: ${entry.name} ${entry.type} ${entry.size} bytes`);
const stat = await sandbox.files.stat('/tmp/work/notes.txt');
console.log(`stat: ${stat.path} ${stat.type}, mode ${(stat.mode & 0o777).toString(8)}`);
await sandbox.files.remove('/tmp/work', { recursive: true });
console.log(`removed: ${!(await sandbox.files.exists('/tmp/work'))}`);
