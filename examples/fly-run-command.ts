/**
 * Run commands on a Fly Machine: exit codes as data, separate stdout and stderr, stdin, and a
 * command that runs longer than one of Fly's exec calls would allow (the adapter starts it
 * detached in the machine and collects its output when it exits).
 *   FLY_API_TOKEN=… FLY_ORG=my-org npx tsx examples/fly-run-command.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/fly')).createFlySandboxProvider();

await using sandbox = await provider.create({ env: { GREETING: 'hello from the machine' } });
const hello = await sandbox.run(['/bin/sh', '-c', 'echo "$GREETING"; echo "a warning" >&2; exit 3']);
console.log(`stdout: ${hello.stdout.trim()}`);
console.log(`stderr: ${hello.stderr.trim()}`);
console.log(`exit ${hello.exitCode}`);

const sorted = await sandbox.run(['sort'], { stdin: 'pear\napple\nfig\n' });
console.log(`sorted: ${sorted.stdout.trim().split('\n').join(', ')}`);

// exec: the command starts now; its streams fill when it exits (Fly's exec output is buffered).
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 1; done']);
const [output, status] = await Promise.all([new Response(counting.stdout).text(), counting.wait()]);
console.log(`${output.trim().split('\n').join(' / ')} (exit ${status.exitCode})`);
