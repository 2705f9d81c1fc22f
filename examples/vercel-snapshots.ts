/**
 * Snapshots: capture a sandbox's filesystem, start a new sandbox from it, and keep using the
 * original (on Vercel, a snapshot stops the session it captures; the adapter resumes the sandbox
 * from that snapshot at once, so files, id and ports stay: only running processes end).
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-snapshots.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

await using original = await provider.create();
await original.files.write('/tmp/state/version.txt', 'v1');
const snapshot = await original.snapshot!();
console.log(`snapshot of ${snapshot.provider}: taken`);

await original.files.write('/tmp/state/version.txt', 'v2, written after the snapshot');
console.log(`original still runs: ${(await original.poll()).state}, reads ${await original.files.readText('/tmp/state/version.txt')}`);

await using copy = await provider.create({ image: snapshot });
console.log(`copy reads ${await copy.files.readText('/tmp/state/version.txt')}`);
await provider.deleteSnapshot?.(snapshot);
console.log('snapshot deleted');
