/**
 * Files in a Cloudflare sandbox: text and binary round trips, listing and stat, a path outside
 * `/workspace` (the bridge's file routes reach only `/workspace`; the adapter stages other paths
 * through it), and removal.
 *   CLOUDFLARE_SANDBOX_BRIDGE_URL=https://… CLOUDFLARE_SANDBOX_BRIDGE_TOKEN=… npx tsx examples/cloudflare-files.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { randomBytes } from 'node:crypto';
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/cloudflare')).createCloudflareSandboxProvider();

await using sandbox = await provider.create();
const blob = randomBytes(3 * 1024 * 1024);
await sandbox.files.write('/workspace/project/blob.bin', blob);
await sandbox.files.write('/workspace/project/notes.txt', 'notes, with ünïcödé\n');
const back = await sandbox.files.read('/workspace/project/blob.bin');
console.log(`round trip intact: ${Buffer.from(back).equals(blob)} (${back.byteLength} bytes)`);
for (const entry of await sandbox.files.list('/workspace/project')) console.log(`listed: ${entry.name} ${entry.type} ${entry.size} bytes`);

await sandbox.files.write('/tmp/elsewhere/config.json', '{"outside": "/workspace"}');
console.log(`outside /workspace: ${await sandbox.files.readText('/tmp/elsewhere/config.json')}`);
const stat = await sandbox.files.stat('/tmp/elsewhere/config.json');
console.log(`stat: ${stat.path} ${stat.type}, ${stat.size} bytes`);

await sandbox.files.remove('/workspace/project', { recursive: true });
console.log(`removed: ${!(await sandbox.files.exists('/workspace/project'))}`);
