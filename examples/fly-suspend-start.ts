/**
 * Suspend and start: `pause()` is Fly's suspend (the machine's memory is kept, its processes stand
 * still, its lifetime clock stops), `resume()` is Fly's start; another process can resume it by id.
 *   FLY_API_TOKEN=… FLY_ORG=my-org npx tsx examples/fly-suspend-start.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { SandboxPausedError, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/fly')).createFlySandboxProvider();

await using sandbox = await provider.create({ timeoutMs: 10 * 60_000 });
if (!sandbox.pause) throw new Error(`${provider.id} cannot pause sandboxes (capabilities.pause is false)`);

// A background process that keeps a count in its memory and writes it to a file.
await sandbox.run([
  '/bin/sh',
  '-c',
  "(setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' > /dev/null 2>&1 &)",
]);
const counted = async (from = sandbox) => Number((await from.files.readText('/tmp/count').catch(() => '0')).trim() || 0);
while ((await counted()) < 3) await new Promise((resolve) => setTimeout(resolve, 100));

await sandbox.pause();
console.log(`status: ${(await sandbox.poll()).state}`);
await sandbox.run('true').then(
  () => console.log('ran while paused?'),
  (error: unknown) => console.log(`commands wait for the start: ${SandboxPausedError.isInstance(error)}`),
);

const later = await provider.fromId(sandbox.id);
await later.resume!();
console.log(`status: ${(await later.poll()).state}`);
const resumedAt = await counted(later);
let now = resumedAt;
while (now <= resumedAt) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  now = await counted(later);
}
console.log(`the background process counts on from where it was: ${now > resumedAt}`);
