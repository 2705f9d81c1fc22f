/**
 * Egress allowlist benchmarks on the local provider (and on Docker when an engine is there), each
 * next to a baseline in the same run: an HTTPS download and a small HTTPS request from an
 * allowlisted sandbox (curl → the bridge → the egress proxy → the server) against the same curl
 * from a `network: 'allow'` sandbox (local: slirp4netns; Docker: its bridge network) to the same
 * server, and the create of an allowlisted sandbox against a `'block'` one.
 *   npx tsx bench/egress.ts [--quick]
 *
 * The server is ours, in a child process (so it does not share the proxy's event loop, as a
 * remote server would not), listening on this host's own non-loopback address: the one place
 * both paths reach, since a networked sandbox never reaches the host's loopback. It serves only
 * connections from this host's addresses and its Docker bridges. The proxy reaches it through an `egressNetwork` that
 * resolves `download.test` to that address; nothing else is dialled.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { networkInterfaces } from 'node:os';
import { connect, type Socket } from 'node:net';
import { generate } from 'selfsigned';
import { createLocalSandboxProvider } from '../adapters/local/index.js';
import type { NetworkPolicy, Sandbox } from '../src/index.js';
import { type EgressNetwork, startEgressProxy } from '../src/kit/index.js';
import { SandboxEmitter } from '../src/spec/events.js';
import { formatTable, goals, latencyRow, throughputRow, type BenchRow } from './stats.js';

const MiB = 1024 * 1024;
const downloadName = 'download.test';

/** The TLS server of the bench, run by a child `node`: `/bytes?n=N` streams N bytes, `/` answers `ok`. */
const serverSource = `
const https = require('node:https');
const allowed = new Set(JSON.parse(process.env.BENCH_ALLOWED));
// Docker bridge subnets, sent by the parent once it knows them (a container's address is its own).
let bridges = [];
process.on('message', (subnets) => {
  bridges = subnets.map((subnet) => [toNumber(subnet.split('/')[0]), Number(subnet.split('/')[1])]);
  process.send('ok');
});
function toNumber(address) { return address.split('.').reduce((total, part) => total * 256 + Number(part), 0); }
function fromBridge(address) {
  if (!/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(address)) return false;
  return bridges.some(([network, bits]) => Math.floor(toNumber(address) / 2 ** (32 - bits)) === Math.floor(network / 2 ** (32 - bits)));
}
const chunk = Buffer.alloc(256 * 1024, 0x61);
const server = https.createServer({ key: process.env.BENCH_KEY, cert: process.env.BENCH_CERT }, (req, res) => {
  const url = new URL(req.url, 'https://x');
  if (url.pathname !== '/bytes') return res.end('ok');
  let left = Math.min(Number(url.searchParams.get('n')) || 0, 2 ** 31);
  res.writeHead(200, { 'content-length': String(left) });
  const pump = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) return res.once('drain', pump);
    }
    res.end();
  };
  pump();
});
// Only this host's own addresses (the proxy, slirp4netns's NAT) and its Docker bridges may connect.
server.on('connection', (socket) => {
  const remote = socket.remoteAddress.replace('::ffff:', '');
  if (!allowed.has(remote) && !fromBridge(remote)) socket.destroy();
});
server.listen(0, process.env.BENCH_HOST, () => console.log(server.address().port));
`;

interface BenchServer {
  host: string;
  port: number;
  /** Lets containers on these subnets (CIDR text) connect too. */
  admit(subnets: string[]): Promise<void>;
  close(): Promise<void>;
}

function hostAddress(): { host: string; all: string[] } | undefined {
  const entries = Object.values(networkInterfaces())
    .flat()
    .filter((entry) => entry?.family === 'IPv4');
  const external = entries.find((entry) => !entry!.internal);
  return external ? { host: external.address, all: entries.map((entry) => entry!.address) } : undefined;
}

async function startServer(): Promise<BenchServer> {
  const address = hostAddress();
  if (!address) throw new Error('this host has no non-loopback IPv4 address for the networked baseline to reach');
  const pems = await generate([{ name: 'commonName', value: downloadName }], {
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2 as const, value: downloadName }] }],
  });
  const child: ChildProcess = spawn(process.execPath, ['-e', serverSource], {
    env: {
      ...process.env,
      BENCH_KEY: pems.private,
      BENCH_CERT: pems.cert,
      BENCH_HOST: address.host,
      BENCH_ALLOWED: JSON.stringify(address.all),
    },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    host: address.host,
    port: Number(line.toString().trim()),
    admit: async (subnets) => {
      child.send(subnets);
      await once(child, 'message');
    },
    close: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** `download.test` → the bench server; every other name is unknown and every other dial refused. */
function benchNetwork(server: BenchServer): EgressNetwork {
  return {
    resolve: async (hostname) => {
      if (hostname.toLowerCase() !== downloadName) throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      return [server.host];
    },
    dial: (address, port, signal) =>
      new Promise<Socket>((resolve, reject) => {
        if (address !== server.host || port !== 443) return reject(Object.assign(new Error('ECONNREFUSED'), { code: 'ECONNREFUSED' }));
        const socket = connect({ host: server.host, port: server.port });
        signal.addEventListener('abort', () => socket.destroy(signal.reason as Error), { once: true });
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      }),
  };
}

/** Runs curl in the sandbox `count` times, each a fresh process and connection; returns curl's own `time_total`s in ms. */
async function curlTimes(sandbox: Sandbox, url: string, count: number, extra = ''): Promise<number[]> {
  const script = `for i in $(seq ${count}); do curl -sS -k ${extra} -o /dev/null -w '%{time_total} %{http_code}\\n' '${url}' || exit 1; done`;
  const result = await sandbox.run(['/bin/sh', '-c', script]);
  if (result.exitCode !== 0) throw new Error(`curl failed in ${sandbox.id}: ${result.stderr}`);
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [seconds, status] = line.split(' ');
      if (status !== '200') throw new Error(`curl got ${status} for ${url}`);
      return Number(seconds) * 1000;
    });
}

/**
 * The same curl run on the host, outside any sandbox: `route` is `--resolve …` straight to the
 * server (the floor both paths sit above) or `--proxy …` through an egress proxy alone.
 */
async function hostCurlTimes(url: string, count: number, route: string[]): Promise<number[]> {
  const samples: number[] = [];
  for (let index = 0; index < count; index++) {
    const child = spawn('curl', ['-sS', '-k', ...route, '-o', '/dev/null', '-w', '%{time_total}', url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    if (code !== 0) throw new Error(`host curl exited ${code}`);
    samples.push(Number(output) * 1000);
  }
  return samples;
}

/** What one provider's rows need: sandboxes made by it, and the label of its `'allow'` path. */
interface ProviderUnderTest {
  label: string;
  allowPath: string;
  create(network: NetworkPolicy): Promise<Sandbox>;
}

async function measure(under: ProviderUnderTest, server: BenchServer, options: { quick?: boolean }): Promise<BenchRow[]> {
  const rounds = options.quick ? 3 : 7;
  const requests = options.quick ? 20 : 60;
  const downloadMiB = options.quick ? 16 : 64;
  const rows: BenchRow[] = [];
  // Warm up: the first create probes the host, the first exec pages in curl.
  const warm = await under.create('block');
  await warm.run(['true']);
  await warm.terminate();

  const proxied = await under.create({ allowDomains: [downloadName] });
  const direct = await under.create('allow');
  try {
    // Each URL names the same server: through the proxy by name, directly by the host's address
    // (no DNS name reaches it from a networked sandbox; curl's --resolve keeps the TLS name).
    const proxiedUrl = (path: string) => `https://${downloadName}${path}`;
    const directUrl = (path: string) => `https://${downloadName}:${server.port}${path}`;
    const resolveDirect = `--resolve ${downloadName}:${server.port}:${server.host}`;
    await curlTimes(proxied, proxiedUrl('/'), 2);
    await curlTimes(direct, directUrl('/'), 2, resolveDirect);

    const bytes = downloadMiB * MiB;
    // curl's own transfer times, taken alternately so that drift on a shared machine hits both.
    const throughProxy: number[] = [];
    const throughDirect: number[] = [];
    for (let index = 0; index < rounds; index++) {
      throughProxy.push(...(await curlTimes(proxied, proxiedUrl(`/bytes?n=${bytes}`), 1)));
      throughDirect.push(...(await curlTimes(direct, directUrl(`/bytes?n=${bytes}`), 1, resolveDirect)));
    }
    const download = `${under.label}: ${downloadMiB} MiB HTTPS download, allowlisted (egress proxy)`;
    rows.push(
      throughputRow(download, downloadMiB, throughProxy, `the same curl, network 'allow' (${under.allowPath})`, throughDirect, {
        goal: goals.ratioAtLeast(0.8),
      }),
    );
    const hostTimes = await hostCurlTimes(directUrl(`/bytes?n=${bytes}`), rounds, straight(server));
    rows.push(throughputRow(download, downloadMiB, throughProxy, 'the same curl on the host, no sandbox', hostTimes, { goal: goals.none }));

    // Per connection: a fresh curl per request (TCP, CONNECT for the proxy, TLS, one GET).
    const proxyLatency: number[] = [];
    const directLatency: number[] = [];
    const batch = Math.max(1, Math.floor(requests / 4));
    for (let done = 0; done < requests; done += batch) {
      proxyLatency.push(...(await curlTimes(proxied, proxiedUrl('/'), batch)));
      directLatency.push(...(await curlTimes(direct, directUrl('/'), batch, resolveDirect)));
    }
    const request = `${under.label}: HTTPS request on a new connection, allowlisted`;
    rows.push(
      latencyRow(request, proxyLatency, "the same, network 'allow'", directLatency, {
        goal: goals.overheadAtMost(2),
        note: (row) => `added ${(row.p50 - row.baselineP50).toFixed(2)} ms, n=${proxyLatency.length}`,
      }),
    );
    const hostLatency = await hostCurlTimes(directUrl('/'), requests, straight(server));
    rows.push(
      latencyRow(request, proxyLatency, 'the same curl on the host, no sandbox', hostLatency, {
        goal: goals.none,
        note: (row) => `added ${(row.p50 - row.baselineP50).toFixed(2)} ms`,
      }),
    );
  } finally {
    await Promise.all([proxied.terminate(), direct.terminate()]);
  }

  // Create until ready to exec: the allowlist adds the proxy and its bridge to a blocked sandbox.
  const timedCreate = async (network: NetworkPolicy) => {
    const started = performance.now();
    const sandbox = await under.create(network);
    const elapsed = performance.now() - started;
    await sandbox.terminate();
    return elapsed;
  };
  const allowlisted: number[] = [];
  const blocked: number[] = [];
  for (let index = 0; index < rounds * 4; index++) {
    allowlisted.push(await timedCreate({ allowDomains: [downloadName] }));
    blocked.push(await timedCreate('block'));
  }
  rows.push(
    latencyRow(`${under.label}: create, allowlisted (ready to exec)`, allowlisted, "create, network 'block'", blocked, {
      goal: goals.none,
      note: (row) => `added ${(row.p50 - row.baselineP50).toFixed(1)} ms`,
    }),
  );
  return rows;
}

/** curl's route straight to the bench server, past any proxy. */
const straight = (server: BenchServer) => ['--noproxy', '*', '--resolve', `${downloadName}:${server.port}:${server.host}`];

/**
 * The egress proxy alone, no sandbox and no bridge: host curl through a proxy listening on
 * loopback against host curl straight to the server, to tell the proxy's cost from the bridge's.
 */
async function measureProxyAlone(server: BenchServer, network: EgressNetwork, options: { quick?: boolean }): Promise<BenchRow[]> {
  const rounds = options.quick ? 3 : 7;
  const requests = options.quick ? 20 : 60;
  const downloadMiB = options.quick ? 16 : 64;
  const proxy = await startEgressProxy({
    provider: 'bench',
    sandboxId: 'bench',
    policy: { allowDomains: [downloadName], allowCidrs: [] },
    listen: { host: '127.0.0.1', port: 0 },
    events: new SandboxEmitter(),
    network,
  });
  try {
    const through = ['--proxy', `http://127.0.0.1:${(proxy.listen as { port: number }).port}`];
    const proxiedUrl = (path: string) => `https://${downloadName}${path}`;
    const directUrl = (path: string) => `https://${downloadName}:${server.port}${path}`;
    const bytes = downloadMiB * MiB;
    const viaProxy: number[] = [];
    const direct: number[] = [];
    for (let index = 0; index < rounds; index++) {
      viaProxy.push(...(await hostCurlTimes(proxiedUrl(`/bytes?n=${bytes}`), 1, through)));
      direct.push(...(await hostCurlTimes(directUrl(`/bytes?n=${bytes}`), 1, straight(server))));
    }
    const proxyLatency: number[] = [];
    const directLatency: number[] = [];
    for (let index = 0; index < requests; index++) {
      proxyLatency.push(...(await hostCurlTimes(proxiedUrl('/'), 1, through)));
      directLatency.push(...(await hostCurlTimes(directUrl('/'), 1, straight(server))));
    }
    return [
      throughputRow(
        `proxy alone: ${downloadMiB} MiB HTTPS download, host curl through it`,
        downloadMiB,
        viaProxy,
        'the same curl straight to the server',
        direct,
        {
          goal: goals.none,
        },
      ),
      latencyRow('proxy alone: HTTPS request on a new connection', proxyLatency, 'the same curl straight to the server', directLatency, {
        goal: goals.none,
        note: (row) => `added ${(row.p50 - row.baselineP50).toFixed(2)} ms`,
      }),
    ];
  } finally {
    await proxy.close();
  }
}

/** The local provider's rows, then Docker's when an engine and the base image are there. */
export async function runEgressBench(options: { quick?: boolean } = {}): Promise<BenchRow[]> {
  const server = await startServer();
  const network = benchNetwork(server);
  try {
    const local = createLocalSandboxProvider({ egressNetwork: network });
    const rows = await measure(
      { label: 'local', allowPath: 'slirp4netns', create: (policy) => local.create({ network: policy }) },
      server,
      options,
    );
    rows.push(...(await measureProxyAlone(server, network, options)));
    const image = process.env.SANDPORT_DOCKER_BASE_IMAGE ?? 'sandport/base:bookworm';
    if (!dockerReady(image)) {
      console.warn(`bench egress: no Docker rows (no engine answers or ${image} is missing)`);
      return rows;
    }
    const { createDockerSandboxProvider } = await import('../adapters/docker/index.js');
    const docker = createDockerSandboxProvider({ defaultImage: image, egressNetwork: network });
    // A networked container makes the provider's bridge network; its subnet is then admitted.
    await (await docker.create({ image, network: 'allow' })).terminate();
    await server.admit(bridgeSubnets());
    const dockerRows = await measure(
      { label: 'docker', allowPath: 'the sandport-isolated bridge', create: (policy) => docker.create({ image, network: policy }) },
      server,
      options,
    );
    return [...rows, ...dockerRows];
  } finally {
    await server.close();
  }
}

/** The subnets of the engine's bridge networks (where a networked container's address comes from). */
function bridgeSubnets(): string[] {
  const ids = execFileSync('docker', ['network', 'ls', '--filter', 'driver=bridge', '-q'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  const subnets = execFileSync('docker', ['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', ...ids], {
    encoding: 'utf8',
  });
  return subnets.split(/\s+/).filter((subnet) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(subnet));
}

function dockerReady(image: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runEgressBench({ quick: process.argv.includes('--quick') });
  console.log(formatTable(rows));
}
