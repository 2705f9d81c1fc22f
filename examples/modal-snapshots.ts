/**
 * Filesystem snapshots: prepare a sandbox once, snapshot it, start fresh sandboxes from it.
 *   npx tsx examples/modal-snapshots.ts
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const prepared = await provider.create();
let snapshot: Awaited<ReturnType<NonNullable<typeof prepared.snapshot>>>;
try {
  await prepared.files.write('/root/app/config.json', JSON.stringify({ prepared: new Date().toISOString() }));
  snapshot = await prepared.snapshot!();
  console.log(`snapshot ${snapshot.id}`);
} finally {
  await prepared.terminate();
}
await using copy = await provider.create({ image: snapshot });
console.log(`the copy sees: ${await copy.files.readText('/root/app/config.json')}`);
