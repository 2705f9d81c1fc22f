/**
 * Entrypoint command: the sandbox lives as long as its main command, and wait() reports its exit.
 *   npx tsx examples/modal-entrypoint.ts
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const sandbox = await provider.create({ command: ['/bin/sh', '-c', 'echo working > /tmp/state; sleep 2; exit 3'] });
console.log(`running: ${(await sandbox.poll()).state}`);
const ended = await sandbox.wait();
console.log(`ended: ${ended.reason}, exit code ${ended.exitCode}`);
