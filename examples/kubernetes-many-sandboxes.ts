/**
 * Many sandboxes at once: four pods created concurrently, each tagged, found again with
 * `list({ tags })` (exact tags in an annotation, indexed by hashed labels), each running its own
 * command, then all terminated.
 *   KUBECONFIG=~/.kube/config npx tsx examples/kubernetes-many-sandboxes.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/kubernetes')).createKubernetesSandboxProvider();

const batch = `batch ${Date.now()} / with spaces`;
const sandboxes = await Promise.all(
  [1, 2, 3, 4].map((worker) => provider.create({ tags: { batch, worker: String(worker) }, timeoutMs: 120_000 })),
);
try {
  const found = await provider.list!({ tags: { batch } });
  console.log(`listed by tag: ${found.length}`);
  const answers = await Promise.all(sandboxes.map((sandbox, index) => sandbox.run(['/bin/sh', '-c', `echo $((${index + 1} * 7))`])));
  console.log(`answers: ${answers.map((answer) => answer.stdout.trim()).join(', ')}`);
  const tags = await sandboxes[2]!.getTags();
  console.log(`worker tag of the third: ${tags.worker}`);
} finally {
  await Promise.all(sandboxes.map((sandbox) => sandbox.terminate()));
}
console.log('all terminated');
