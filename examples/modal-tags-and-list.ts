/**
 * Tags and list: tag sandboxes, list the running ones carrying given tags, retag.
 *   npx tsx examples/modal-tags-and-list.ts
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
const run = Date.now().toString(36);
const a = await provider.create({ tags: { run, role: 'api' } });
const b = await provider.create({ tags: { run, role: 'worker' } });
try {
  console.log(`tagged ${run}: ${(await provider.list!({ tags: { run } })).length} sandboxes`);
  await b.setTags({ run, role: 'api' });
  const apis = await provider.list!({ tags: { run, role: 'api' } });
  console.log(`role=api after retagging: ${apis.filter((info) => info.id === a.id || info.id === b.id).length} sandboxes`);
  console.log(`tags of b: ${JSON.stringify(await b.getTags())}`);
} finally {
  await Promise.all([a.terminate(), b.terminate()]);
}
