/**
 * Claude Code installs a package from an allowlisted registry, and nothing else is reachable:
 * the sandbox's allowlist names one registry, the model API goes through the credential proxy's
 * route, and every other connection is refused and reported as an `egress` event.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-npm-allowlist.ts
 *
 * To run offline, the registry is this example's own: a tiny server on the host's loopback that
 * serves one package, known to the egress proxy as `registry.internal` through the provider's
 * `egressNetwork` (the resolver and dialer the proxy uses). With a real registry, drop
 * `egressNetwork`, list its host name in `allowDomains` and point NPM_CONFIG_REGISTRY at it.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { AgentSession, CredentialProxy, claudeCodeHostMount } from 'sandport';
import type { EgressNetwork } from 'sandport/kit';
import { createLocalSandboxProvider } from 'sandport/local';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

// The registry: one package, `sandport-greet@1.0.0`, as npm asks for it (a packument, then the tarball).
const registryName = 'registry.internal';
const tarball = await packageTarball({
  'package/package.json': JSON.stringify({ name: 'sandport-greet', version: '1.0.0', main: 'index.js' }),
  'package/index.js': 'module.exports = (who) => `hello, ${who}, from sandport-greet`;\n',
});
const packument = {
  name: 'sandport-greet',
  'dist-tags': { latest: '1.0.0' },
  versions: {
    '1.0.0': {
      name: 'sandport-greet',
      version: '1.0.0',
      main: 'index.js',
      dist: {
        tarball: `http://${registryName}/sandport-greet/-/sandport-greet-1.0.0.tgz`,
        shasum: createHash('sha1').update(tarball).digest('hex'),
        integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
      },
    },
  },
};
const registry = createServer((request, response) => {
  if (request.url === '/sandport-greet') return void response.setHeader('content-type', 'application/json').end(JSON.stringify(packument));
  if (request.url === '/sandport-greet/-/sandport-greet-1.0.0.tgz') return void response.end(tarball);
  response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
});
await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
registry.unref();
const registryPort = (registry.address() as AddressInfo).port;

// The proxy refuses loopback addresses unless listed, so the name resolves to a documentation
// address (RFC 5737, routed nowhere) that only this dialer knows how to reach.
const network: EgressNetwork = {
  async resolve(hostname) {
    if (hostname.toLowerCase() !== registryName) throw Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' });
    return ['203.0.113.20'];
  },
  dial(address, port, signal) {
    if (address !== '203.0.113.20' || port !== 80) return Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: registryPort, signal });
      socket.once('connect', () => resolve(socket)).once('error', reject);
    });
  },
};

const provider = createLocalSandboxProvider({ egressNetwork: network });
const decisions: string[] = [];
provider.events.on('egress', (event) =>
  decisions.push(`${event.decision} ${event.host}:${event.port}${event.reason ? ` (${event.reason})` : ''}`),
);

const cli = claudeCodeHostMount();
await using proxy = await CredentialProxy.start({ apiKey, baseUrl: process.env.ANTHROPIC_BASE_URL });
await using sandbox = await provider.create(
  proxy.createOptions(provider, {
    network: { allowDomains: [registryName] },
    env: {
      NPM_CONFIG_REGISTRY: `http://${registryName}/`,
      NPM_CONFIG_UPDATE_NOTIFIER: 'false',
      NPM_CONFIG_AUDIT: 'false',
      NPM_CONFIG_FUND: 'false',
    },
    volumes: cli.createOptions.volumes,
  }),
);
await using agent = await AgentSession.start(sandbox, { executable: cli.executable, credentials: proxy, cwd: '/workspace', maxTurns: 10 });

const install = `cd /workspace && npm install sandport-greet >/dev/null && node -e "console.log(require('sandport-greet')('agent'))"`;
const elsewhere = `curl -sS -m 10 -o /dev/null -w '%{http_code}' https://example.com; echo " exit=$?"`;
const result = await agent.send(
  `Install the npm package sandport-greet, call it with "agent", then check whether example.com is reachable; report both outputs. BASH: ${install}; ${elsewhere}`,
).result;
console.log(result.text);
console.log(`installed: ${await sandbox.files.exists('/workspace/node_modules/sandport-greet/index.js')}`);
for (const line of decisions) console.log(`  egress: ${line}`);

/** A gzipped tarball of `files` (path → text), the form npm installs from. */
async function packageTarball(files: Record<string, string>): Promise<Buffer> {
  const archive = pack();
  for (const [name, text] of Object.entries(files)) archive.entry({ name, mode: 0o644 }, text);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
}
