/**
 * A web server in a pod, reached from this machine through a tunnel: a local listener on
 * 127.0.0.1 that port-forwards each connection to the pod (no Service, no Ingress needed).
 *   KUBECONFIG=~/.kube/config npx tsx examples/kubernetes-server-and-tunnel.ts
 * The image needs python3 (pass `image`, or the provider's `defaultImage`). The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/kubernetes')).createKubernetesSandboxProvider();

await using sandbox = await provider.create({ ports: [8000] });
await sandbox.files.write('/tmp/site/index.html', 'served from the pod\n');
// Started in the background: the exec returns while the server keeps running.
await sandbox.run(['/bin/sh', '-c', 'cd /tmp/site && nohup python3 -m http.server 8000 >/tmp/server.log 2>&1 &']);
const tunnel = (await sandbox.tunnels())[8000]!;
for (let attempt = 0; attempt < 50; attempt++) {
  try {
    const response = await fetch(tunnel.url, { signal: AbortSignal.timeout(2_000) });
    console.log(`GET ${tunnel.url} -> ${(await response.text()).trim()}`);
    break;
  } catch {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
