/**
 * A dev server behind a port: declare the port at create, start a Node.js server that outlives
 * the command that started it, and reach it from here through the sandbox's URL for that port
 * (`https://<subdomain>.vercel.run` on Vercel).
 *   VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_PROJECT_ID=… npx tsx examples/vercel-dev-server.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/vercel')).createVercelSandboxProvider();

await using sandbox = await provider.create({ ports: [3000] });
await sandbox.files.write(
  '/tmp/server.js',
  "require('node:http').createServer((request, response) => response.end(`served from the sandbox: ${request.url}\\n`)).listen(3000);\n",
);
// setsid detaches the server from this command: the command returns at once, the server stays.
await sandbox.run(['/bin/sh', '-c', '(setsid node /tmp/server.js > /tmp/server.log 2>&1 &)']);

const { url } = (await sandbox.tunnels())[3000]!;
let body: string | undefined;
for (let attempt = 0; attempt < 100 && body === undefined; attempt++) {
  body = await getText(`${url}/hello`);
  if (body === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
}
if (body === undefined) throw new Error(`the server never answered at ${url}: ${await sandbox.files.readText('/tmp/server.log')}`);
console.log(`GET ${url}/hello -> ${body.trim()}`);

/** GET a URL's body, or undefined after 3 s or on any error (the server may not listen yet). */
async function getText(target: string): Promise<string | undefined> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(undefined);
    }, 3_000);
  });
  const request = fetch(target, { signal: controller.signal }).then(
    (response) => (response.ok ? response.text() : undefined),
    () => undefined,
  );
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
