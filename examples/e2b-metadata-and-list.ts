/**
 * Metadata and list: label sandboxes with tags (E2B's `metadata`), list the running ones that
 * carry given tags (E2B's `Sandbox.list({ query: { metadata } })`), relabel one, and find one
 * again by its id or its unique name.
 *   E2B_API_KEY=… npx tsx examples/e2b-metadata-and-list.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();
if (!provider.list) throw new Error(`${provider.id} cannot list sandboxes (capabilities.list is false)`);

const run = `run-${Date.now().toString(36)}`;
const [api, worker] = await Promise.all([
  provider.create({ name: `${run}-api`, tags: { run, role: 'api' } }),
  provider.create({ tags: { run, role: 'worker' } }),
]);
try {
  const mine = await provider.list({ tags: { run } });
  console.log(`tagged ${run}: ${mine.length} sandboxes`);
  for (const info of mine.sort((a, b) => (a.tags.role ?? '').localeCompare(b.tags.role ?? '')))
    console.log(`  ${info.tags.role}: name ${info.name ?? '(none)'}, created ${new Date(info.createdAt).toISOString()}`);

  await worker.setTags({ run, role: 'api', promoted: 'yes' });
  console.log(`role=api after relabelling: ${(await provider.list({ tags: { run, role: 'api' } })).length} sandboxes`);
  console.log(`tags of the worker: ${JSON.stringify(await worker.getTags())}`);

  const byId = await provider.fromId(worker.id);
  console.log(`fromId finds it: ${byId.id === worker.id}`);
  if (provider.fromName) console.log(`fromName finds the api: ${(await provider.fromName(`${run}-api`)).id === api.id}`);
} finally {
  await Promise.all([api.terminate(), worker.terminate()]);
}
console.log(`after terminate: ${(await provider.list({ tags: { run } })).length} sandboxes`);
