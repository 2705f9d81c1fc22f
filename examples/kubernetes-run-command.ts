/**
 * Run commands in a pod on your Kubernetes cluster: exit codes as data, separate stdout and
 * stderr, stdin with end-of-file, and output streamed while the command runs.
 *   KUBECONFIG=~/.kube/config npx tsx examples/kubernetes-run-command.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/kubernetes')).createKubernetesSandboxProvider();

await using sandbox = await provider.create({ env: { GREETING: 'hello from the pod' } });
const hello = await sandbox.run(['/bin/sh', '-c', 'echo "$GREETING"; echo "a warning" >&2; exit 3']);
console.log(`stdout: ${hello.stdout.trim()}`);
console.log(`stderr: ${hello.stderr.trim()}`);
console.log(`exit ${hello.exitCode}`);

// stdin reaches the command, and closing it is end-of-file (sort prints only then).
const sorted = await sandbox.run(['sort'], { stdin: 'pear\napple\nfig\n' });
console.log(`sorted: ${sorted.stdout.trim().split('\n').join(', ')}`);

// exec streams: each line arrives while the command runs.
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done']);
const [output, status] = await Promise.all([new Response(counting.stdout).text(), counting.wait()]);
console.log(`${output.trim().split('\n').join(' / ')} (exit ${status.exitCode})`);
