/**
 * Watching a directory: react to files as another command drops them in (E2B's
 * `files.watchDir(path, onEvent, { recursive })`). Events print in the order they happened.
 *   E2B_API_KEY=… npx tsx examples/e2b-watch.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

await using sandbox = await provider.create();
await sandbox.files.mkdir('/tmp/uploads/images');
if (!sandbox.files.watch) throw new Error(`${provider.id} cannot watch files (capabilities.files.watch is false)`);

// Resolves once the watch is in place: every change from here on is reported.
await using watch = await sandbox.files.watch('/tmp/uploads', { recursive: true });
const script = [
  'cd /tmp/uploads',
  'echo "first draft" > report.txt',
  'echo "second draft" >> report.txt',
  'printf "\\211PNG" > images/logo.png',
  'echo scratch > scratch.tmp',
  'rm scratch.tmp',
  'touch done',
].join(' && ');
const writer = await sandbox.exec(['/bin/sh', '-c', script]);

for await (const event of watch) {
  console.log(`${event.type} ${event.path}${event.oldPath === undefined ? '' : ` (from ${event.oldPath})`}`);
  if (event.path === '/tmp/uploads/done') break; // leaving the loop stops the watcher in the sandbox
}
console.log(`the writer exited ${(await writer.wait()).exitCode}`);
console.log(`report.txt: ${JSON.stringify(await sandbox.files.readText('/tmp/uploads/report.txt'))}`);
