/**
 * Stop and start, keeping what runs: `pause()` is Daytona's pause (processes frozen, memory and
 * files kept, the lifetime held while paused) and `resume()` its start, which picks up where the
 * pause left; a later process can find the paused sandbox by id and start it. Daytona's own stop
 * (files kept, processes ended) stays on the SDK object: `sandbox.native.stop()` / `.start()`.
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-stop-start.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { SandboxPausedError, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create({ timeoutMs: 10 * 60_000, tags: { example: 'stop-start' } });
if (!sandbox.pause) throw new Error(`${provider.id} cannot pause sandboxes (capabilities.pause is false)`);

// A worker that keeps its progress in memory and reports it in a file: it survives only if its
// process does.
await sandbox.run([
  '/bin/sh',
  '-c',
  "(setsid sh -c 'n=0; while :; do n=$((n+1)); echo $n > /tmp/progress; sleep 0.1; done' > /dev/null 2>&1 &)",
]);
const progress = async (of = sandbox) => Number((await of.files.readText('/tmp/progress').catch(() => '0')).trim() || 0);
while ((await progress()) < 3) await new Promise((resolve) => setTimeout(resolve, 100));
await sandbox.files.write('/tmp/notes.txt', 'written before the stop\n');

await sandbox.pause();
console.log(`after pause(): ${(await sandbox.poll()).state}`);
const refused = await sandbox.files.readText('/tmp/notes.txt').then(
  () => false,
  (error: unknown) => SandboxPausedError.isInstance(error),
);
console.log(`calls while stopped are refused with SandboxPausedError: ${refused}`);

// Later, perhaps in another process: find it by id and start it again.
const found = await provider.fromId(sandbox.id);
console.log(`found by id: ${(await found.poll()).state}`);
await found.resume!();
console.log(`after resume(): ${(await found.poll()).state}`);
console.log(`files kept: ${(await found.files.readText('/tmp/notes.txt')).trim()}`);
const before = await progress(found);
let after = before;
while (after <= before) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  after = await progress(found);
}
console.log(`the worker runs on from where it was: ${after > before}`);
