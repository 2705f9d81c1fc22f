/**
 * Quickstart on the local provider: no account, no network, nothing to configure.
 *   npm run demo
 * Swap `createLocalSandboxProvider()` for another provider and the rest stays the same.
 */
import { lines, readText } from 'sandport';
import { createLocalSandboxProvider } from 'sandport/local';

const provider = createLocalSandboxProvider();

// One sandbox, terminated at the end of the block (`await using`).
await using sandbox = await provider.create({ ports: [8000], timeoutMs: 60_000, tags: { example: 'quickstart' } });
console.log(`sandbox ${sandbox.id} is up`);

// exec streams: print each line as the command produces it.
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done']);
for await (const line of lines(counting.stdout)) console.log(`  stdout: ${line}`);
console.log(`  exit code ${(await counting.wait()).exitCode}`);

// stdin: write, then close for EOF.
const upper = await sandbox.exec(['tr', 'a-z', 'A-Z']);
const writer = upper.stdin.getWriter();
await writer.write(new TextEncoder().encode('shout this\n'));
await writer.close();
console.log(`  tr says: ${(await readText(upper.stdout)).trim()}`);

// Files, seen from inside the sandbox.
await sandbox.files.write('/workspace/index.html', '<h1>hello from the sandbox</h1>\n');
console.log('  files:', (await sandbox.files.list('/workspace')).map((entry) => `${entry.name} (${entry.size} B)`).join(', '));

// A tunnel: a server inside, reached from the host.
await sandbox.run(['/bin/sh', '-c', 'cd /workspace && (setsid python3 -m http.server 8000 >/dev/null 2>&1 &)']);
const { url } = (await sandbox.tunnels())[8000]!;
let page = '';
for (let attempt = 0; attempt < 50 && !page; attempt++) {
  page = (await getText(url)) ?? '';
  if (!page) await new Promise((resolve) => setTimeout(resolve, 100));
}
console.log(`  GET ${url} -> ${page.trim()}`);

// A snapshot, and a second sandbox started from it.
const snapshot = await sandbox.snapshot!();
await using copy = await provider.create({ image: snapshot, network: 'block' });
console.log(`  the copy sees: ${(await copy.files.readText('/workspace/index.html')).trim()}`);

await copy.terminate();
await sandbox.terminate();
console.log('done: both sandboxes terminated');

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
