/**
 * Hello exec: create a sandbox, run a command, read its output and exit code.
 *   MODAL_TOKEN_ID=… MODAL_TOKEN_SECRET=… npx tsx examples/modal-hello-exec.ts
 * Same file on the local provider: swap the provider line for `createLocalSandboxProvider()` from 'sandport/local'.
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const sandbox = await provider.create();
try {
  const result = await sandbox.run(['python3', '-c', 'print("hello from", __import__("platform").python_version())']);
  console.log(`exit ${result.exitCode}: ${result.stdout.trim()}`);
} finally {
  await sandbox.terminate();
}
