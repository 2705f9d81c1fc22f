/**
 * Hybrid pattern: prepare a sandbox once, snapshot it, start fresh sandboxes from the snapshot.
 *   npx tsx examples/local-snapshots.ts
 */
import { createLocalSandboxProvider } from 'sandport/local';

const provider = createLocalSandboxProvider();
const template = await provider.create({ network: 'block' });
await template.run(['/bin/sh', '-c', 'mkdir -p /workspace/app && echo "prepared once" > /workspace/app/state.txt']);
const snapshot = await template.snapshot!();
await template.terminate();

const workers = await Promise.all([1, 2, 3].map(() => provider.create({ image: snapshot, network: 'block' })));
for (const [index, worker] of workers.entries()) {
  await worker.files.write('/workspace/app/worker.txt', `worker ${index}`);
  console.log(
    worker.id,
    (await worker.files.readText('/workspace/app/state.txt')).trim(),
    '+',
    await worker.files.readText('/workspace/app/worker.txt'),
  );
}
await Promise.all(workers.map((worker) => worker.terminate()));
await provider.deleteSnapshot(snapshot);
