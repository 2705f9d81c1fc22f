/**
 * Network policy: a sandbox with `network: 'block'` (Vercel's `deny-all`) reaches nothing, and a
 * domain allowlist (`{ allowDomains }`, Vercel's `allow` list) reaches only what it lists.
 * Allowlists of subnets (`allowCidrs`) map to Vercel's `subnets.allow`, and
 * `providerOptions.vercel.denyCidrs` to `subnets.deny`.
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-network-policy.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

// Prints "reached" or "refused" for a URL, from inside the sandbox.
const probe =
  "fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(() => console.log('reached'), () => console.log('refused'))";

await using blocked = await provider.create({ network: 'block' });
console.log(`blocked sandbox, example.com: ${(await blocked.run(['node', '-e', probe, 'http://example.com/'])).stdout.trim()}`);

await using listed = await provider.create({ network: { allowDomains: ['example.com'] } });
console.log(`allowlisted sandbox, example.org: ${(await listed.run(['node', '-e', probe, 'http://example.org/'])).stdout.trim()}`);
