/**
 * Files in a Daytona sandbox: write text and a binary file (streamed up through Daytona's file
 * API), read them back, list a directory, stat and remove.
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-files.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { randomBytes } from 'node:crypto';
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create();
const blob = randomBytes(3 * 1024 * 1024);
await sandbox.files.write('/tmp/work/notes.txt', 'written from the host, read in the sandbox\n');
await sandbox.files.write('/tmp/work/blob.bin', blob);
const back = await sandbox.files.read('/tmp/work/blob.bin');
console.log(`round trip intact: ${Buffer.from(back).equals(blob)} (${back.byteLength} bytes)`);
console.log(`in the sandbox: ${(await sandbox.run(['cat', '/tmp/work/notes.txt'])).stdout.trim()}`);
for (const entry of await sandbox.files.list('/tmp/work')) console.log(`listed: ${entry.name} ${entry.type} ${entry.size} bytes`);
const info = await sandbox.files.stat('/tmp/work/notes.txt');
console.log(`stat: ${info.path} ${info.type}`);
await sandbox.files.remove('/tmp/work', { recursive: true });
console.log(`removed: ${!(await sandbox.files.exists('/tmp/work'))}`);
