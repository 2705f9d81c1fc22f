/**
 * Volumes: a named Modal Volume outlives the sandboxes that mount it.
 *   npx tsx examples/modal-volumes.ts
 * On the local provider a volume source is a host directory instead of a name.
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const volume = 'sandport-example-data';
const writer = await provider.create({ volumes: { '/data': volume } });
try {
  await writer.run(['/bin/sh', '-c', 'date +%s > /data/written-at && sync']);
} finally {
  await writer.terminate();
}
const reader = await provider.create({ volumes: { '/data': { source: volume, readOnly: true } } });
try {
  console.log(`read back from the volume: ${(await reader.files.readText('/data/written-at')).trim()}`);
  console.log(`read-only mount refuses writes: ${(await reader.run('echo x > /data/x')).exitCode !== 0}`);
} finally {
  await reader.terminate();
}
