/**
 * Limits and a blocked network: requests equal limits for cpu and memory, and `network: 'block'`
 * becomes a NetworkPolicy owned by the pod. The adapter checks from inside the pod that the
 * cluster enforces it, and fails the create if it does not (a network plugin without
 * NetworkPolicy support accepts the object and enforces nothing).
 *   KUBECONFIG=~/.kube/config npx tsx examples/kubernetes-limits-and-network.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/kubernetes')).createKubernetesSandboxProvider();

await using sandbox = await provider.create({ cpu: 0.5, memoryMiB: 512, network: 'block', timeoutMs: 120_000 });
// A connection attempt to a public address from inside: refused or unreachable, never open.
const attempt = await sandbox.run([
  'bash',
  '-c',
  'timeout 3 bash -c "exec 3<>/dev/tcp/1.1.1.1/53" 2>/dev/null && echo open || echo blocked',
]);
console.log(`outbound connection: ${attempt.stdout.trim()}`);
const status = await sandbox.poll();
console.log(`sandbox ${status.state}, lifetime capped at 120 s`);
