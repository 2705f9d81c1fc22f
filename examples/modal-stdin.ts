/**
 * Stdin: write to a running command, close for EOF, read what it made of it.
 *   npx tsx examples/modal-stdin.ts
 */
import { readText } from 'sandport';
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
await using sandbox = await provider.create();
const process = await sandbox.exec(['/bin/sh', '-c', 'while read line; do echo "got: $line"; done']);
const writer = process.stdin.getWriter();
for (const line of ['first', 'second', 'third']) await writer.write(new TextEncoder().encode(`${line}\n`));
await writer.close();
console.log((await readText(process.stdout)).trim());
console.log(`exit ${(await process.wait()).exitCode}`);
