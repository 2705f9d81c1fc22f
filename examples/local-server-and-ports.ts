/**
 * Long-running pattern: a server started by one exec keeps running, and a tunnel reaches it.
 *   npx tsx examples/local-server-and-ports.ts
 */
import { createLocalSandboxProvider } from 'sandport/local';

const provider = createLocalSandboxProvider();
const sandbox = await provider.create({ ports: [3000], network: 'block', idleTimeoutMs: 120_000 });
try {
  await sandbox.files.write(
    '/workspace/server.js',
    `require('http').createServer((req, res) => res.end('served from ' + require('os').hostname() + req.url + '\\n')).listen(3000);`,
  );
  // setsid detaches the server from this exec: the exec returns, the server stays.
  await sandbox.run(['/bin/sh', '-c', '(setsid node /workspace/server.js > /tmp/server.log 2>&1 &)']);
  const { url } = (await sandbox.tunnels())[3000]!;
  for (let attempt = 1; attempt <= 50; attempt++) {
    const body = await getText(`${url}/hello`);
    if (body) {
      console.log(`GET ${url}/hello -> ${body.trim()}`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
} finally {
  await sandbox.terminate();
}

/**
 * GET a URL's body, or undefined after 3 s or on any error. The timer is a referenced one on
 * purpose: a fetch whose connection the server dropped right after accepting it has been seen to
 * stay pending with nothing else keeping Node alive, and AbortSignal.timeout's timer would not.
 */
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
    (response) => response.text(),
    () => undefined,
  );
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
