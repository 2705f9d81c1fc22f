/**
 * Pause and resume: a paused sandbox keeps its memory, its running processes and its files, runs
 * nothing, and does not use up its timeout; resume it later, from this process or another one by
 * its id (E2B's `sandbox.pause()` and `Sandbox.connect(id)`).
 *   E2B_API_KEY=… npx tsx examples/e2b-pause-resume.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { SandboxPausedError, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

await using sandbox = await provider.create({ timeoutMs: 10 * 60_000 });
if (!sandbox.pause) throw new Error(`${provider.id} cannot pause sandboxes (capabilities.pause is false)`);

// A background process that keeps state in its memory (the count) and on disk.
await sandbox.files.write('/tmp/notes.txt', 'written before the pause\n');
await sandbox.run([
  '/bin/sh',
  '-c',
  "(setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' > /dev/null 2>&1 &)",
]);
const counted = async () => Number((await sandbox.files.readText('/tmp/count').catch(() => '0')).trim() || 0);
while ((await counted()) < 3) await new Promise((resolve) => setTimeout(resolve, 100));

await sandbox.pause();
console.log(`status: ${(await sandbox.poll()).state}`);
await sandbox.run('true').then(
  () => console.log('ran while paused?'),
  (error: unknown) => console.log(`commands wait for resume: ${SandboxPausedError.isInstance(error)}`),
);

// Later, possibly from another process: find the sandbox by id and resume it.
const later = await provider.fromId(sandbox.id);
await later.resume!();
console.log(`status: ${(await later.poll()).state}`);
const resumedAt = Number((await later.files.readText('/tmp/count')).trim());
let now = resumedAt;
while (now <= resumedAt) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  now = Number((await later.files.readText('/tmp/count')).trim());
}
console.log(`the background process counts on from where it was: ${now > resumedAt}`);
console.log(`the file survived: ${(await later.files.readText('/tmp/notes.txt')).trim()}`);
