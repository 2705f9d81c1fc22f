/**
 * Streaming output: lines arrive while the command still runs; stdout and stderr stay apart.
 *   npx tsx examples/modal-streaming-output.ts
 */
import { lines } from 'sandport';
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
await using sandbox = await provider.create();
const process = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; echo "note $i" >&2; sleep 0.2; done']);
const errors = (async () => {
  for await (const line of lines(process.stderr)) console.log(`stderr: ${line}`);
})();
for await (const line of lines(process.stdout)) console.log(`stdout: ${line} (at ${new Date().toISOString()})`);
await errors;
console.log(`exit ${(await process.wait()).exitCode}`);
