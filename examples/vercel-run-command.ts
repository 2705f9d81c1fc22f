/**
 * Run commands in a Vercel Sandbox: exit codes as data, stdout and stderr apart, and the logs of
 * a longer command streamed while it runs (a detached `runCommand` and its log stream). Vercel
 * commands have no stdin: pass input as a file or an argument.
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-run-command.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

await using sandbox = await provider.create({ env: { GREETING: 'hello from the sandbox' } });
const hello = await sandbox.run(['/bin/sh', '-c', 'echo "$GREETING"; echo "a warning" >&2; exit 3']);
console.log(`stdout: ${hello.stdout.trim()}`);
console.log(`stderr: ${hello.stderr.trim()}`);
console.log(`exit ${hello.exitCode}`);

// An argv passes through unchanged: no shell quoting to get right.
const echoed = await sandbox.run(['printf', '%s|', 'with space', "it's", '$HOME']);
console.log(`argv: ${echoed.stdout}`);

// exec: each line arrives as the command prints it.
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done']);
const lines: string[] = [];
for await (const chunk of counting.stdout.pipeThrough(new TextDecoderStream())) lines.push(...chunk.split('\n').filter(Boolean));
const status = await counting.wait();
console.log(`${lines.join(' / ')} (exit ${status.exitCode})`);
