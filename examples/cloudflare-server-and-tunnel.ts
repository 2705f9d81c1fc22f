/**
 * A background server and a tunnel: start an HTTP server that outlives the command that started
 * it, then reach it from here through the port's URL (on Cloudflare, the bridge's quick tunnel,
 * `https://<x>.trycloudflare.com`).
 *   CLOUDFLARE_SANDBOX_BRIDGE_URL=https://… CLOUDFLARE_SANDBOX_BRIDGE_TOKEN=… npx tsx examples/cloudflare-server-and-tunnel.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/cloudflare')).createCloudflareSandboxProvider();

// Ports are declared at create (Cloudflare tunnels 1024 to 65535, not 3000).
await using sandbox = await provider.create({ ports: [8000] });
await sandbox.files.write('/workspace/site/index.html', 'served from the sandbox\n');
// setsid detaches the server from this command: the command returns at once, the server stays.
await sandbox.run(['/bin/sh', '-c', '(setsid python3 -m http.server 8000 --directory /workspace/site > /tmp/server.log 2>&1 &)']);

const { url } = (await sandbox.tunnels())[8000]!;
let body: string | undefined;
for (let attempt = 0; attempt < 100 && body === undefined; attempt++) {
  body = await getText(url);
  if (body === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
}
if (body === undefined) throw new Error(`the server never answered at ${url}: ${await sandbox.files.readText('/tmp/server.log')}`);
console.log(`GET ${url} -> ${body.trim()}`);

/** GET a URL's body, or undefined after 3 s or on any error (the server may not listen yet). */
async function getText(url: string): Promise<string | undefined> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(undefined);
    }, 3_000);
  });
  const request = fetch(url, { signal: controller.signal }).then(
    (response) => (response.ok ? response.text() : undefined),
    () => undefined,
  );
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
