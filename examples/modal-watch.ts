/**
 * Watching a directory: events print while another command writes, moves and removes files.
 *   npx tsx examples/modal-watch.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });

await using sandbox = await provider.create();
await sandbox.files.mkdir('/tmp/inbox/sub');
if (!sandbox.files.watch) throw new Error(`${provider.id} cannot watch files (capabilities.files.watch is false)`);

// Resolves once the watch is in place: every change from here on is reported.
await using watch = await sandbox.files.watch('/tmp/inbox', { recursive: true });
const script = [
  'cd /tmp/inbox',
  'echo draft > notes.txt',
  'echo more >> notes.txt',
  'mv notes.txt sub/notes.txt',
  'echo scratch > sub/scratch.txt',
  'rm sub/scratch.txt',
  'touch done',
].join(' && ');
const writer = await sandbox.exec(['/bin/sh', '-c', script]);

for await (const event of watch) {
  console.log(`${event.type} ${event.path}${event.oldPath === undefined ? '' : ` (from ${event.oldPath})`}`);
  if (event.path === '/tmp/inbox/done') break; // leaving the loop stops the watcher in the sandbox
}
console.log(`the writer exited ${(await writer.wait()).exitCode}`);
