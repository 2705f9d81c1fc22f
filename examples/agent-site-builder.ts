/**
 * Long-running pattern: the site builder. One long-lived sandbox serves a website on one port
 * and hosts the agent that edits it behind another (the agent service: `startAgentHost`, reached
 * with `AgentSession.connect` over WebSocket through the port's tunnel). The page is fetched
 * through its tunnel before and after each edit; the app detaches and re-attaches while the
 * agent keeps running, as a web app or a chat bot would between requests.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-site-builder.ts
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples', defaultImage: 'node:22-bookworm' });
 * (an image with Node ≥ 18, as claudeCodeImage()'s; set SANDPORT_PROXY_PUBLIC_URL where there is no host route).
 * Or on Docker, with an image that has python3 (the credential proxy's host route runs through
 * it) and git, e.g. built FROM debian:bookworm-slim with `apt-get install -y python3 git`:
 *   const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: 'sandport/examples:bookworm' });
 */
import {
  AgentSession,
  CredentialProxy,
  claudeCodeHostMount,
  ensureClaudeCode,
  nodeHostMount,
  startAgentHost,
  type Sandbox,
  type SandboxProvider,
} from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();

/**
 * Where the credential proxy is for sandboxes: a host route on local and Docker; for providers
 * without one (Modal, E2B, …) the URL mode, at the public URL of a listener you put behind it
 * (README, "Credentials for sandboxes that are not on this host").
 */
const proxyOptions = {
  apiKey,
  baseUrl: process.env.ANTHROPIC_BASE_URL,
  ...(process.env.SANDPORT_PROXY_PUBLIC_URL && {
    listen: { host: process.env.SANDPORT_PROXY_HOST ?? '127.0.0.1', port: Number(process.env.SANDPORT_PROXY_PORT ?? 8080) },
    publicUrl: process.env.SANDPORT_PROXY_PUBLIC_URL,
  }),
};
const agentPort = 7681;
const sitePort = 8080;

/** A static file server for the sandbox's Node: `serve.cjs <port> <root>`; no cache, so every edit shows at once. */
const staticServer = `const http = require('node:http'), fs = require('node:fs'), path = require('node:path');
const [port, root] = process.argv.slice(2);
http.createServer((request, response) => {
  const file = path.join(root, path.normalize(decodeURIComponent(new URL(request.url, 'http://site').pathname)), request.url.endsWith('/') ? 'index.html' : '');
  fs.readFile(file, (error, data) => {
    if (error) return response.writeHead(404).end('not found');
    response.writeHead(200, { 'content-type': file.endsWith('.html') ? 'text/html' : 'application/octet-stream', 'cache-control': 'no-store' }).end(data);
  });
}).listen(Number(port));
`;

// The CLI and Node: mounted from the host where volumes are host paths (local, Docker), otherwise
// the CLI is uploaded and the image's own `node` runs the host and the site's server.
const hostPaths = provider.capabilities.volumes === 'host-path' || provider.capabilities.volumes === 'host-path-or-named';
const cliMount = hostPaths ? claudeCodeHostMount() : undefined;
const nodeMount = hostPaths ? nodeHostMount() : undefined;
const node = nodeMount?.node ?? 'node';

await using proxy = await CredentialProxy.start(proxyOptions);
const sandbox = await provider.create(
  proxy.createOptions(provider, {
    // Docker publishes ports only from a container with a network (it refuses 'block' with ports).
    network: provider.id === 'docker' ? 'allow' : 'block',
    ports: [agentPort, sitePort],
    timeoutMs: 60 * 60_000,
    volumes: { ...cliMount?.createOptions.volumes, ...nodeMount?.createOptions.volumes },
  }),
);
try {
  const cli = await ensureClaudeCode(sandbox, cliMount ? { executable: cliMount.executable, install: false } : { install: 'upload' });

  // The site, and a static server for it that reads the files on every request (live edits).
  await sandbox.files.write('/workspace/site/index.html', '<!doctype html>\n<title>Bakery</title>\n<h1>Coming soon</h1>\n');
  await sandbox.files.write('/tmp/site-server/serve.cjs', staticServer);
  await sandbox.exec([node, '/tmp/site-server/serve.cjs', String(sitePort), '/workspace/site']);
  const tunnels = await sandbox.tunnels();
  const site = tunnels[sitePort]!.url;
  console.log(`site: ${site}`);
  console.log(`before: ${await headline(site)}`);

  // The agent service: one host in the sandbox, agents started on demand behind one port.
  const host = await startAgentHost(sandbox, { port: agentPort, node });
  const connection = { port: agentPort, token: host.token };
  const agent = await AgentSession.connect(sandbox, {
    ...connection,
    agentId: 'site-builder',
    executable: cli.executable,
    credentials: proxy,
    cwd: '/workspace/site',
    maxTurns: 10,
  });
  const edit = await agent.send('In index.html, change the headline to "Open for business" and keep the rest of the page.').result;
  console.log(`agent: ${edit.text}`);
  console.log(`after: ${await headline(site)}`);

  // The app lets go (a request ended, the app restarts…); the agent keeps running in the sandbox.
  await agent.detach();
  const listed = (await (
    await fetch(`${tunnels[agentPort]!.url}/agents`, { headers: { authorization: `Bearer ${host.token}` } })
  ).json()) as {
    agents: Array<{ agent: string; busy: boolean }>;
  };
  console.log(`running on the host: ${listed.agents.map((entry) => entry.agent).join(', ')}`);

  const again = await AgentSession.connect(sandbox, { ...connection, attach: 'site-builder' });
  const second = await again.send('Add a paragraph under the headline with our hours: "Open daily, 7 to 3".').result;
  console.log(`agent (re-attached, same session: ${again.sessionId === agent.sessionId}): ${second.text}`);
  console.log(`after: ${await headline(site)} / ${await paragraph(site)}`);

  await again.close();
  await host.stop();
} finally {
  // A real site builder keeps its sandbox for days; the example cleans up after itself.
  await terminate(sandbox);
}

async function headline(url: string): Promise<string> {
  return /<h1>(.*?)<\/h1>/.exec(await page(url))?.[1] ?? '(no headline)';
}

async function paragraph(url: string): Promise<string> {
  return /<p>(.*?)<\/p>/.exec(await page(url))?.[1] ?? '(no paragraph)';
}

/** The page through the tunnel, retried while the server starts. */
async function page(url: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (response.ok) return await response.text();
      if (attempt >= 50) throw new Error(`GET ${url}: ${response.status}`);
    } catch (error) {
      if (attempt >= 50) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function terminate(target: Sandbox): Promise<void> {
  await target.terminate();
  console.log(`sandbox: ${(await target.poll()).state}`);
}
