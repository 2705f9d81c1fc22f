/**
 * Snapshots: set a sandbox up once, snapshot it, and start fresh sandboxes from the snapshot
 * (E2B's `sandbox.createSnapshot()` and `Sandbox.create(snapshotId)`); delete it when done.
 *   E2B_API_KEY=… npx tsx examples/e2b-snapshots.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider, SandboxSnapshotRef } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();

let snapshot: SandboxSnapshotRef;
{
  await using prepared = await provider.create();
  if (!prepared.snapshot) throw new Error(`${provider.id} cannot snapshot sandboxes (capabilities.snapshot is false)`);
  // The slow setup done once: here a small virtual-env-like tree and a config file.
  await prepared.run([
    '/bin/sh',
    '-c',
    'mkdir -p /tmp/app/lib && echo "def greet(): return \'hello from the snapshot\'" > /tmp/app/lib/greeting.py',
  ]);
  await prepared.files.write('/tmp/app/config.json', JSON.stringify({ preparedAt: new Date().toISOString() }));
  snapshot = await prepared.snapshot();
  console.log(`snapshot taken (the source keeps running: ${(await prepared.poll()).state})`);
}

// Each copy starts with the prepared files, and its own changes stay its own.
const copies = await Promise.all([provider.create({ image: snapshot }), provider.create({ image: snapshot })]);
try {
  for (const [index, copy] of copies.entries()) {
    const greeting = await copy.run([
      'python3',
      '-c',
      'import sys; sys.path.insert(0, "/tmp/app/lib"); import greeting; print(greeting.greet())',
    ]);
    await copy.files.write('/tmp/app/mine.txt', `copy ${index}`);
    console.log(
      `copy ${index}: ${greeting.stdout.trim()}, config ${(await copy.files.exists('/tmp/app/config.json')) ? 'present' : 'missing'}`,
    );
  }
  console.log(`copies stay apart: ${(await copies[0]!.files.readText('/tmp/app/mine.txt')) === 'copy 0'}`);
} finally {
  await Promise.all(copies.map((copy) => copy.terminate()));
}
await provider.deleteSnapshot?.(snapshot);
console.log(`snapshot deleted: ${provider.deleteSnapshot !== undefined}`);
