/**
 * An egress allowlist: the sandbox reaches the names on its list and nothing else, every
 * connection is reported as an `egress` event, and the list changes while the sandbox runs.
 *   npx tsx examples/egress-allowlist.ts
 *
 * The sandbox has no route out; an egress proxy on the host (one per sandbox) enforces the list,
 * and the sandbox's HTTP_PROXY / HTTPS_PROXY / ALL_PROXY point at it. To run offline, this
 * example is its own little internet: two services on this machine under made-up names, wired
 * in through the provider's `egressNetwork` (the resolver and dialer the proxy uses, as an app
 * with its own service discovery would). Against the real internet, drop `egressNetwork` and
 * list real names: `network: { allowDomains: ['api.github.com', '*.pythonhosted.org'] }`.
 * On Docker, change one line: `createDockerSandboxProvider({ egressNetwork: services })`.
 */
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createLocalSandboxProvider } from 'sandport/local';
import type { EgressNetwork } from 'sandport/kit';

// Two services on the host's loopback, each known by a name and a "virtual" address: the proxy
// refuses loopback and private addresses unless allowCidrs lists them, so the names map to
// documentation addresses (RFC 5737, never routed anywhere) and the dialer knows where those
// services really are.
const services = new Map<string, { address: string; port: number }>();
for (const [name, address] of [
  ['docs.internal', '203.0.113.10'],
  ['billing.internal', '203.0.113.11'],
] as const) {
  const server = createServer((request, response) => response.end(`${name} says hello (${request.url})\n`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  services.set(name, { address, port: (server.address() as AddressInfo).port });
}
const network: EgressNetwork = {
  async resolve(hostname) {
    const service = services.get(hostname.toLowerCase());
    if (!service) throw Object.assign(new Error(`${hostname} is not a known service`), { code: 'ENOTFOUND' });
    return [service.address];
  },
  dial(address, port, signal) {
    const service = [...services.values()].find((entry) => entry.address === address);
    if (!service || port !== 80) return Promise.reject(Object.assign(new Error(`nothing at ${address}:${port}`), { code: 'ECONNREFUSED' }));
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: service.port, signal });
      socket.once('connect', () => resolve(socket)).once('error', reject);
    });
  },
};

const provider = createLocalSandboxProvider({ egressNetwork: network });
provider.events.on('egress', (event) => {
  const bytes = event.decision === 'allowed' ? `, ${event.bytesSent} B out, ${event.bytesReceived} B in` : '';
  console.log(`  egress: ${event.decision} ${event.protocol} ${event.host}:${event.port}${event.reason ? ` (${event.reason})` : bytes}`);
});

await using sandbox = await provider.create({ network: { allowDomains: ['docs.internal'] } });
// The allowlist itself is a warning: programs must honour the proxy variables to get out.
for (const warning of sandbox.warnings) console.log(`warning: ${warning.type === 'other' ? warning.message : warning.details}`);

const fetchIn = async (url: string, extra: string[] = []) => {
  const result = await sandbox.run(['curl', '-sS', '--max-time', '10', ...extra, url]);
  return (result.stdout.trim() || result.stderr.trim()).split('\n')[0];
};
console.log(`docs.internal    -> ${await fetchIn('http://docs.internal/guide')}`);
console.log(`billing.internal -> ${await fetchIn('http://billing.internal/invoices')}`);
// A program that ignores the proxy variables has no route at all: it fails closed.
console.log(`docs.internal, proxy ignored -> ${await fetchIn('http://docs.internal/guide', ['--noproxy', '*'])}`);

// A live change: the next connection may reach billing too; 'block' refuses every new one.
await sandbox.updateNetwork!({ allowDomains: ['docs.internal', 'billing.internal'] });
console.log(`after updateNetwork, billing.internal -> ${await fetchIn('http://billing.internal/invoices')}`);
await sandbox.updateNetwork!('block');
console.log(`after 'block', docs.internal -> ${await fetchIn('http://docs.internal/guide')}`);
// Give the allowed connections' events (sent when each closes) a moment to print.
await new Promise((resolve) => setTimeout(resolve, 200));
console.log('done: the sandbox reached only what its list allowed');
