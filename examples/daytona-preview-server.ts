/**
 * A server in the sandbox reached from here through a Daytona preview link: the adapter's tunnel
 * is a signed preview URL, so a plain `fetch` needs no token header.
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-preview-server.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create({ ports: [8000] });
await sandbox.files.write('/tmp/site/index.html', 'served from the Daytona sandbox\n');
// setsid detaches the server from this command: the command returns at once, the server stays.
await sandbox.run(['/bin/sh', '-c', '(setsid python3 -m http.server 8000 --directory /tmp/site > /tmp/server.log 2>&1 &)']);

const { url } = (await sandbox.tunnels())[8000]!;
let body: string | undefined;
for (let attempt = 0; attempt < 100 && body === undefined; attempt++) {
  body = await getText(url);
  if (body === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
}
if (body === undefined) throw new Error(`the server never answered: ${await sandbox.files.readText('/tmp/server.log')}`);
console.log(`GET the preview URL -> ${body.trim()}`);

/** GET a URL's body, or undefined after 3 s or on any error (the server may not listen yet). */
async function getText(target: string): Promise<string | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 3_000);
  try {
    const response = await fetch(target, { signal: controller.signal });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
