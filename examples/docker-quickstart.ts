/**
 * Quickstart on the Docker provider: one container per sandbox, on the local engine.
 *   bash scripts/setup-docker.sh   # engine + the sandport/base:bookworm image (once)
 *   npx tsx examples/docker-quickstart.ts
 * The calls are the same as on any other provider; only the factory and `image` differ.
 */
import { lines, readText } from 'sandport';
import { createDockerSandboxProvider } from 'sandport/docker';

const image = process.env.SANDPORT_DOCKER_BASE_IMAGE ?? 'sandport/base:bookworm';
const provider = createDockerSandboxProvider({ defaultImage: image });

// Limits and a blocked network are security settings: the engine enforces them or create throws.
await using sandbox = await provider.create({
  network: 'block',
  memoryMiB: 256,
  cpu: 1,
  timeoutMs: 120_000,
  tags: { example: 'docker-quickstart' },
});
console.log(`sandbox ${sandbox.id} is up`);

// exec streams: print each line as the command produces it.
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done']);
for await (const line of lines(counting.stdout)) console.log(`  stdout: ${line}`);
console.log(`  exit code ${(await counting.wait()).exitCode}`);

// stdin: write, then close for EOF.
const upper = await sandbox.exec(['tr', 'a-z', 'A-Z']);
const writer = upper.stdin.getWriter();
await writer.write(new TextEncoder().encode('shout this\n'));
await writer.close();
console.log(`  tr says: ${(await readText(upper.stdout)).trim()}`);

// Files go through the engine's archive API; paths and symlinks resolve inside the container.
await sandbox.files.write('/workspace/notes.txt', 'written from the host\n');
console.log(`  cat sees: ${(await sandbox.run(['cat', '/workspace/notes.txt'])).stdout.trim()}`);
console.log('  files:', (await sandbox.files.list('/workspace')).map((entry) => `${entry.name} (${entry.size} B)`).join(', '));

// Another process could find this sandbox too: lookups read the container's labels.
const found = await provider.list({ tags: { example: 'docker-quickstart' } });
console.log(`  list by tag finds: ${found.map((info) => info.id).join(', ')}`);

// A snapshot is a committed image; a new sandbox starts from it.
const snapshot = await sandbox.snapshot();
await using copy = await provider.create({ image: snapshot, network: 'block' });
console.log(`  the copy sees: ${(await copy.files.readText('/workspace/notes.txt')).trim()}`);

await copy.terminate();
await sandbox.terminate();
// The snapshot is an image on the engine: delete it when no sandbox will start from it again.
await provider.deleteSnapshot?.(snapshot);
console.log('done: both sandboxes terminated, the snapshot deleted');
