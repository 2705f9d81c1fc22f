/**
 * A server as the sandbox's own command, and its logs read from `sandbox.stdout` and
 * `sandbox.stderr` while it runs.
 *   npx tsx examples/modal-server-logs.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { lines, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });

// -u: unbuffered, so each log line leaves the server as it is written.
await using sandbox = await provider.create({ command: ['python3', '-u', '-m', 'http.server', '8000', '--bind', '127.0.0.1'] });
if (!sandbox.stdout || !sandbox.stderr) throw new Error(`${provider.id} does not expose the entrypoint's output`);

// http.server says where it listens on stdout, and logs each request on stderr.
const stdout = lines(sandbox.stdout);
const stderr = lines(sandbox.stderr);
const banner = await stdout.next();
console.log(`server says: ${banner.value}`);

for (const path of ['/', '/missing']) {
  const client = await sandbox.run([
    'python3',
    '-c',
    `import urllib.request as u\ntry: u.urlopen('http://127.0.0.1:8000${path}')\nexcept Exception: pass`,
  ]);
  if (client.exitCode !== 0) throw new Error(`the request failed: ${client.stderr}`);
}
// The two requests, and the 404's own error line, as the server logged them.
for (let count = 0; count < 3; count++) console.log(`log: ${(await stderr.next()).value}`);
