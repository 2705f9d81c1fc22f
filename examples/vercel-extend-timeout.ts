/**
 * Lifetimes: a sandbox made for one minute, extended to ten minutes from now (Vercel's
 * `extendTimeout` adds what the new deadline needs), still running afterwards.
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-extend-timeout.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

await using sandbox = await provider.create({ timeoutMs: 60_000 });
console.log(`created for 60 s: ${(await sandbox.poll()).state}`);
await sandbox.extendTimeout!(10 * 60_000);
console.log(`extended to 10 minutes from now: ${(await sandbox.poll()).state}`);
console.log(`still runs commands: ${(await sandbox.run(['echo', 'yes'])).stdout.trim()}`);
