/**
 * Run code and stream its output: write a Python script into the sandbox, run it, and print its
 * stdout and stderr line by line as they arrive (what E2B's `commands.run(cmd, { onStdout,
 * onStderr })` is used for). A non-zero exit is data, not an exception.
 *   E2B_API_KEY=… npx tsx examples/e2b-run-code.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import { lines, type SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

await using sandbox = await provider.create();
await sandbox.files.write(
  '/tmp/job.py',
  [
    'import sys, time',
    'for step in range(1, 4):',
    '    print(f"step {step} of 3", flush=True)',
    '    print(f"log: finished step {step}", file=sys.stderr, flush=True)',
    '    time.sleep(0.2)',
    'sys.exit(3)',
  ].join('\n'),
);

// -u: unbuffered, so each line leaves Python as it is printed.
const job = await sandbox.exec(['python3', '-u', '/tmp/job.py']);
const errors = (async () => {
  for await (const line of lines(job.stderr)) console.log(`stderr: ${line}`);
})();
for await (const line of lines(job.stdout)) console.log(`stdout: ${line}`);
await errors;
console.log(`exit ${(await job.wait()).exitCode}`);

// The buffered form, for short commands.
const version = await sandbox.run(['python3', '-c', 'import platform; print(platform.python_version())']);
console.log(`python ${version.stdout.trim()}`);
