/**
 * Named sandboxes: create one under a name, find it again (from any process), reject a duplicate.
 *   npx tsx examples/modal-named-lookup.ts
 */
import { SandboxAlreadyExistsError } from 'sandport';
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const name = `worker-${Date.now()}`;
const sandbox = await provider.create({ name });
try {
  await sandbox.files.write('/tmp/who', 'the named one');
  const found = await provider.fromName!(name);
  console.log(`fromName(${name}) -> ${found.id}: ${await found.files.readText('/tmp/who')}`);
  const again = await provider.fromId(sandbox.id);
  console.log(`fromId -> same sandbox: ${again.id === sandbox.id}`);
  await provider
    .create({ name })
    .catch((error: unknown) => console.log(`duplicate name rejected: ${SandboxAlreadyExistsError.isInstance(error)}`));
} finally {
  await sandbox.terminate();
}
