/**
 * Snapshots: prepare a sandbox once, snapshot it (a Daytona snapshot), start fresh sandboxes
 * from it, and delete it when done.
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-snapshots.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider, SandboxSnapshotRef } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

let snapshot: SandboxSnapshotRef;
{
  await using prepared = await provider.create();
  if (!prepared.snapshot) throw new Error(`${provider.id} cannot snapshot sandboxes`);
  await prepared.files.write('/tmp/app/setting.txt', 'prepared once\n');
  snapshot = await prepared.snapshot();
  console.log('snapshot taken');
}

await using copy = await provider.create({ image: snapshot });
console.log(`the copy has: ${(await copy.files.readText('/tmp/app/setting.txt')).trim()}`);
await copy.files.write('/tmp/app/setting.txt', 'changed in the copy\n');
await using second = await provider.create({ image: snapshot });
console.log(`a second copy still has: ${(await second.files.readText('/tmp/app/setting.txt')).trim()}`);
await provider.deleteSnapshot?.(snapshot);
console.log('snapshot deleted');
