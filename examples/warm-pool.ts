/**
 * Warm pool: keep prepared sandboxes ready so that a job gets one in well under a millisecond
 * instead of waiting for a create and a clone.
 *   npx tsx examples/warm-pool.ts
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });
 */
import { createSandboxPool, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();

const pool = createSandboxPool(provider, {
  size: 2,
  createOptions: { network: 'block', timeoutMs: 60 * 60_000, tags: { example: 'warm-pool' } },
  // Retire (and replace) a sandbox that waited 5 minutes, or that is 30 minutes old.
  maxIdleMs: 5 * 60_000,
  maxAgeMs: 30 * 60_000,
  // The slow part, done ahead of time: here the app's files and a check of them; for real, a
  // `git clone` and an install (or start the pool from a snapshot: createOptions.image).
  prepare: async (sandbox, { signal }) => {
    await sandbox.files.write('/workspace/app/main.sh', 'echo "$1 done"\n', { signal });
    await sandbox.run(['sh', '-n', '/workspace/app/main.sh'], { signal, throwOnNonZeroExit: true });
  },
  // Runs on a ready sandbox just before it is handed over; false retires it and tries the next.
  healthCheck: async (sandbox, { signal }) => sandbox.files.exists('/workspace/app/main.sh', { signal }),
});
const handedOver: string[] = [];
pool.events.on('acquired', (event) => handedOver.push(event.warm ? 'warm' : 'cold'));
pool.events.on('retired', (event) => console.log(`pool: retired a sandbox (${event.reason})`));
pool.events.on('error', (event) => console.log(`pool: ${event.operation} failed, retry in ${event.retryInMs} ms: ${String(event.error)}`));

await pool.waitUntilWarm({ signal: AbortSignal.timeout(60_000) });
console.log(`pool is warm: ${pool.stats().ready} sandboxes ready`);

// Three jobs at once: two get a ready sandbox, the third one's sandbox is created for it (cold).
const results = await Promise.all(
  ['job 1', 'job 2', 'job 3'].map(async (job) => {
    const sandbox = await pool.acquire({ signal: AbortSignal.timeout(60_000) });
    try {
      return (await sandbox.run(['sh', '/workspace/app/main.sh', job], { throwOnNonZeroExit: true })).stdout.trim();
    } finally {
      await sandbox.terminate(); // a sandbox handed over is the caller's to end
    }
  }),
);
console.log(results.join(', '));
console.log(`handed over: ${handedOver.sort().reverse().join(', ')}`);

// The pool refilled itself in the background.
await pool.waitUntilWarm({ signal: AbortSignal.timeout(60_000) });
console.log(`pool is warm again: ${pool.stats().ready} ready`);

await pool.close();
console.log(`closed: ${(await provider.list?.({ tags: { example: 'warm-pool' } }))?.length ?? 0} sandboxes left running`);
