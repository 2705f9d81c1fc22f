/**
 * Tunnels: an HTTP server in the sandbox, reached from here. Modal tunnels are TLS by default;
 * `encrypted: false` asks for a plain TCP tunnel, which also works against the local emulator.
 *   npx tsx examples/modal-tunnels.ts
 */
import { createModalSandboxProvider } from 'sandport/modal';

const provider = createModalSandboxProvider({ appName: 'sandport-examples' });
await using sandbox = await provider.create({ ports: [{ port: 8000, encrypted: false }] });
await sandbox.run(['/bin/sh', '-c', '(setsid python3 -m http.server 8000 --directory /tmp > /tmp/server.log 2>&1 &)']);
await sandbox.files.write('/tmp/index.html', 'served from the sandbox\n');
const { url } = (await sandbox.tunnels())[8000]!;
for (let attempt = 0; attempt < 100; attempt++) {
  const body = await getText(url);
  if (body) {
    console.log(`GET ${url} -> ${body.trim()}`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
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
