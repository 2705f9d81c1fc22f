/**
 * A server behind a service port: declare the port at create (it becomes a Fly service of the
 * sandbox's own app), start a server that outlives the command that started it, and reach it at
 * `https://<app>.fly.dev:<port>`.
 *   FLY_API_TOKEN=… FLY_ORG=my-org npx tsx examples/fly-server-and-service.ts
 * (the app needs a public IP for its host name to answer: `fly ips allocate-v6 -a <app>`).
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/fly')).createFlySandboxProvider();

await using sandbox = await provider.create({ ports: [8000] });
await sandbox.files.write('/tmp/site/index.html', 'served from the machine\n');
// setsid detaches the server from this command: the command returns at once, the server stays.
await sandbox.run(['/bin/sh', '-c', '(setsid python3 -m http.server 8000 --directory /tmp/site > /tmp/server.log 2>&1 &)']);

const { url } = (await sandbox.tunnels())[8000]!;
let body: string | undefined;
for (let attempt = 0; attempt < 100 && body === undefined; attempt++) {
  body = await getText(url);
  if (body === undefined) await new Promise((resolve) => setTimeout(resolve, 200));
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
