/**
 * Run code in a Daytona sandbox: a Python snippet, exit codes as data, stdout and stderr apart,
 * and input on stdin (Daytona's one-shot `executeCommand` merges the two outputs; the adapter runs
 * each command as a session command and reads its logs, so they stay apart).
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-run-code.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create({ env: { GREETING: 'hello from Daytona' } });
const python = await sandbox.run(['python3', '-c', 'import os, sys; print(os.environ["GREETING"]); print(sum(range(10)))']);
console.log(`python: ${python.stdout.trim().split('\n').join(', ')}`);

const failing = await sandbox.run(['/bin/sh', '-c', 'echo "to stdout"; echo "to stderr" >&2; exit 4']);
console.log(`stdout: ${failing.stdout.trim()} | stderr: ${failing.stderr.trim()} | exit ${failing.exitCode}`);

// An argv passes through byte for byte: no shell quoting to get wrong.
const quoted = await sandbox.run(['printf', '%s\n', 'it\'s a "quoted" $HOME']);
console.log(`argv: ${quoted.stdout.trim()}`);

const sorted = await sandbox.run(['sort'], { stdin: 'pear\napple\nfig\n' });
console.log(`sorted: ${sorted.stdout.trim().split('\n').join(', ')}`);
