/**
 * The emulator's control plane as a user of the real `e2b` SDK sees it, through the SDK's own
 * calls (no sandport adapter): create and its options, getInfo, kill, list with its filters and
 * paginator, timeouts, connect, pause and resume, snapshots, metrics, network settings and their
 * refusals, and tunnels through `getHost`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AuthenticationError, Sandbox, SandboxError, SandboxNotFoundError, type SandboxInfo } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { serverCommand } from '../../src/testing/servers.js';
import { webSocketEcho } from '../../src/testing/ws-client.js';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir } from './e2b/e2b-templates.js';

const baseBuilt = existsSync(join(e2bImagesDir(), 'base', '.sandport-complete')) && process.getuid?.() === 0;
const needsBase = baseBuilt ? '' : ' (skipped: needs root and the base rootfs of scripts/build-e2b-images.sh)';
// The local provider's pause() is what the emulator pauses with.
const canPause = createLocalSandboxProvider().capabilities.pause;
const needsPause = canPause ? '' : ' (skipped: the local provider cannot pause yet: capabilities.pause is false)';

let emulator: E2bEmulator;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  emulator = await startE2bEmulator();
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
});

afterAll(async () => {
  for (const sandbox of sandboxes) await sandbox.kill().catch(() => undefined);
  await emulator?.close();
});

async function create(createOptions: Parameters<typeof Sandbox.create>[1] = {}, template = 'base'): Promise<Sandbox> {
  const sandbox = await Sandbox.create(template, { ...options, timeoutMs: 120_000, ...createOptions });
  sandboxes.push(sandbox);
  return sandbox;
}

async function failure(call: Promise<unknown>): Promise<SandboxError & { statusCode?: number }> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome as SandboxError & { statusCode?: number };
}

/** Polls until `check` holds (each poll is a real call; no timing is asserted). */
async function eventually<T>(probe: () => Promise<T>, check: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await probe();
    if (check(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`never saw ${what}`);
}

function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(' ');
}

/** A server in the sandbox that answers every GET with the Host header it got. */
const hostEchoServer = [
  'import http.server as h',
  'class H(h.BaseHTTPRequestHandler):',
  '    def do_GET(self):',
  "        body = self.headers['Host'].encode()",
  '        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)',
  '    def log_message(self, *args): pass',
  "h.HTTPServer(('0.0.0.0', 8000), H).serve_forever()",
].join('\n');

async function listAll(query: Parameters<typeof Sandbox.list>[0]): Promise<SandboxInfo[]> {
  const paginator = Sandbox.list({ ...options, ...query });
  const all: SandboxInfo[] = [];
  while (paginator.hasNext) all.push(...(await paginator.nextItems()));
  return all;
}

describe.skipIf(!baseBuilt)(`create and getInfo${needsBase}`, () => {
  it('creates a secured sandbox of base with its metadata, envs and timeout, as getInfo reports', async () => {
    const before = Date.now();
    const sandbox = await create({ metadata: { suite: 'control', who: 'create' }, envs: { GREETING: 'hi there' }, timeoutMs: 90_500 });
    expect(sandbox.sandboxId).toMatch(/^[a-z0-9]{20}$/);
    expect(sandbox.sandboxDomain).toBe(emulator.domain);
    const info = await sandbox.getInfo();
    expect(info).toMatchObject({
      sandboxId: sandbox.sandboxId,
      name: 'base',
      metadata: { suite: 'control', who: 'create' },
      state: 'running',
      cpuCount: 2,
      memoryMB: 512,
      envdVersion: '0.6.4',
      sandboxDomain: emulator.domain,
      lifecycle: { onTimeout: 'kill', autoResume: false },
      volumeMounts: [],
    });
    expect(info.templateId).toMatch(/^[a-z0-9]{20}$/);
    expect(info.startedAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    // 90.5 s round up to 91 s, as the SDK sends whole seconds.
    expect(info.endAt.getTime() - info.startedAt.getTime()).toBeGreaterThanOrEqual(91_000);
    expect(info.endAt.getTime() - info.startedAt.getTime()).toBeLessThan(93_000);
    expect((await sandbox.commands.run('echo "$GREETING"')).stdout).toBe('hi there\n');
    expect(await sandbox.isRunning()).toBe(true);
  });

  it('refuses a wrong API key with AuthenticationError and a timeout over 24 hours with a 400', async () => {
    const emulatorWithKey = await startE2bEmulator({ apiKey: 'e2b_right' });
    try {
      const error = await failure(Sandbox.create('base', { ...options, apiUrl: emulatorWithKey.url, apiKey: 'e2b_wrong' }));
      expect(error).toBeInstanceOf(AuthenticationError);
      expect(error.message).toContain('Invalid API key');
    } finally {
      await emulatorWithKey.close();
    }
    const tooLong = await failure(Sandbox.create('base', { ...options, timeoutMs: 24 * 3600_000 + 1000 }));
    expect(tooLong).toBeInstanceOf(SandboxError);
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.message).toContain('timeout: must be at most 86400 seconds');
  });

  it('refuses what the local sandbox cannot honour with a 400 naming it', async () => {
    const cases: Array<[Parameters<typeof Sandbox.create>[1], string]> = [
      [{ network: { allowOut: ['not a host'], denyOut: ['0.0.0.0/0'] } }, 'network.allowOut.0: "not a host" is not a CIDR block'],
      [{ network: { denyOut: ['10.0.0.0/8'] } }, 'network.denyOut: denying single destinations (10.0.0.0/8)'],
      [{ network: { egressProxy: { address: 'proxy.invalid:1080' } } }, 'network.egressProxy'],
      [{ network: { httpsPorts: [8443] } }, 'network.httpsPorts'],
      [{ lifecycle: { onTimeout: { action: 'pause', keepMemory: false } } }, 'autoPauseMemory'],
    ];
    for (const [createOptions, message] of cases) {
      const error = await failure(Sandbox.create('base', { ...options, ...createOptions }));
      expect(error).toBeInstanceOf(SandboxError);
      expect(error.statusCode).toBe(400);
      expect(error.message).toContain(`400: ${message}`);
    }
  });

  it('blocks all egress with allowInternetAccess: false, and keeps it so through updateNetwork', async () => {
    const sandbox = await create({ allowInternetAccess: false });
    const info = await sandbox.getInfo();
    expect(info.allowInternetAccess).toBe(false);
    // No network device but loopback inside.
    const devices = await sandbox.commands.run("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    expect(devices.stdout.trim().split('\n')).toEqual(['lo']);
    await sandbox.updateNetwork({ allowInternetAccess: false });
    // E2B can open it, or allow a list through; a local sandbox created without a route cannot.
    const open = await failure(sandbox.updateNetwork({ allowInternetAccess: true }));
    expect(open.statusCode).toBe(501);
    expect(open.message).toContain(`PUT /sandboxes/${sandbox.sandboxId}/network (updateNetwork) is not emulated`);
    const allowlist = await failure(sandbox.updateNetwork({ allowOut: ['example.com'], denyOut: ['0.0.0.0/0'] }));
    expect(allowlist.statusCode).toBe(501);
    expect(allowlist.message).toContain('no route and no egress proxy');
    expect((await sandbox.getInfo()).allowInternetAccess).toBe(false);
  });
});

describe.skipIf(!baseBuilt)(`kill, timeouts and connect${needsBase}`, () => {
  it('kills once: the second kill is false, and the sandbox is not found after', async () => {
    const sandbox = await create();
    expect(await sandbox.kill()).toBe(true);
    expect(await sandbox.kill()).toBe(false);
    expect(await Sandbox.kill(sandbox.sandboxId, options)).toBe(false);
    expect(await failure(sandbox.getInfo())).toBeInstanceOf(SandboxNotFoundError);
    expect(await failure(Sandbox.connect(sandbox.sandboxId, options))).toBeInstanceOf(SandboxNotFoundError);
    expect(await failure(sandbox.setTimeout(60_000))).toBeInstanceOf(SandboxNotFoundError);
    // envd is gone with it.
    expect(await sandbox.isRunning()).toBe(false);
    await expect(sandbox.commands.run('true')).rejects.toThrow();
    const unknown = await failure(Sandbox.getInfo('nosuchsandbox000000', options));
    expect(unknown).toBeInstanceOf(SandboxNotFoundError);
  });

  it('setTimeout moves endAt from now, and the sandbox ends when it runs out', async () => {
    const sandbox = await create({ timeoutMs: 60_000 });
    const before = await sandbox.getInfo();
    await sandbox.setTimeout(600_000);
    const after = await sandbox.getInfo();
    expect(after.endAt.getTime() - Date.now()).toBeGreaterThan(590_000);
    expect(after.endAt.getTime()).toBeGreaterThan(before.endAt.getTime());
    await sandbox.setTimeout(1_000);
    await eventually(
      () =>
        sandbox.getInfo().then(
          () => 'running',
          (error: unknown) => (error instanceof SandboxNotFoundError ? 'gone' : String(error)),
        ),
      (value) => value === 'gone',
      'the sandbox end after its timeout',
    );
    await expect(sandbox.commands.run('true')).rejects.toThrow();
  });

  it('connect to a running sandbox extends its timeout and never shortens it', async () => {
    const sandbox = await create({ timeoutMs: 60_000 });
    const { endAt } = await sandbox.getInfo();
    const again = await Sandbox.connect(sandbox.sandboxId, { ...options, timeoutMs: 10_000 });
    expect(again.sandboxId).toBe(sandbox.sandboxId);
    expect((await sandbox.getInfo()).endAt.getTime()).toBe(endAt.getTime());
    await Sandbox.connect(sandbox.sandboxId, { ...options, timeoutMs: 900_000 });
    expect((await sandbox.getInfo()).endAt.getTime() - Date.now()).toBeGreaterThan(890_000);
    // The connected instance reaches envd with the sandbox's access token.
    expect((await again.commands.run('echo connected')).stdout).toBe('connected\n');
  });
});

describe.skipIf(!baseBuilt)(`list${needsBase}`, () => {
  it('filters by metadata, pages with limit and nextToken, newest first or oldest first', async () => {
    const tag = `list-${Date.now()}`;
    const made: Sandbox[] = [];
    for (const index of [0, 1, 2]) made.push(await create({ metadata: { listing: tag, index: String(index), 'odd key&=': 'a b/c' } }));
    const ids = made.map((sandbox) => sandbox.sandboxId);

    const first = Sandbox.list({ ...options, query: { metadata: { listing: tag } }, limit: 2 });
    const page1 = await first.nextItems();
    expect(page1.map((info) => info.sandboxId)).toEqual([ids[2], ids[1]]);
    expect(first.hasNext).toBe(true);
    const page2 = await first.nextItems();
    expect(page2.map((info) => info.sandboxId)).toEqual([ids[0]]);
    expect(first.hasNext).toBe(false);
    expect(page1[0]).toMatchObject({ state: 'running', name: 'base', cpuCount: 2, memoryMB: 512, metadata: { listing: tag, index: '2' } });

    const ascending = await listAll({ query: { metadata: { listing: tag } }, order: 'asc', limit: 1 });
    expect(ascending.map((info) => info.sandboxId)).toEqual(ids);
    const one = await listAll({ query: { metadata: { listing: tag, index: '1', 'odd key&=': 'a b/c' } } });
    expect(one.map((info) => info.sandboxId)).toEqual([ids[1]]);
    expect(await listAll({ query: { metadata: { listing: tag, index: 'nope' } } })).toEqual([]);
    expect(await listAll({ query: { metadata: { listing: tag }, state: ['paused'] } })).toEqual([]);

    await made[1]!.kill();
    const remaining = await listAll({ query: { metadata: { listing: tag } } });
    expect(remaining.map((info) => info.sandboxId)).toEqual([ids[2], ids[0]]);
  });
});

describe.skipIf(!baseBuilt || !canPause)(`pause and resume${needsBase}${needsPause}`, () => {
  it('pauses with its processes and files, makes envd unreachable, and connect resumes it', async () => {
    const sandbox = await create({ metadata: { pausing: 'yes' } });
    await sandbox.commands.run('echo kept > /tmp/kept.txt; sleep 1000 >/dev/null 2>&1 &');
    expect(await sandbox.pause()).toBe(true);
    expect(await sandbox.pause()).toBe(false);
    expect((await sandbox.getInfo()).state).toBe('paused');
    // envd is unreachable while paused, as on E2B.
    expect(await sandbox.isRunning()).toBe(false);
    await expect(sandbox.commands.run('true', { requestTimeoutMs: 5_000 })).rejects.toThrow(/not running/);
    // A snapshot of a paused sandbox leaves it paused.
    const snapshot = await sandbox.createSnapshot();
    expect((await sandbox.getInfo()).state).toBe('paused');
    expect(await Sandbox.deleteSnapshot(snapshot.snapshotId, options)).toBe(true);
    const paused = await listAll({ query: { metadata: { pausing: 'yes' }, state: ['paused'] } });
    expect(paused.map((info) => info.sandboxId)).toEqual([sandbox.sandboxId]);

    const resumed = await Sandbox.connect(sandbox.sandboxId, { ...options, timeoutMs: 120_000 });
    expect((await sandbox.getInfo()).state).toBe('running');
    expect((await resumed.commands.run('cat /tmp/kept.txt')).stdout).toBe('kept\n');
    expect((await resumed.commands.run('pgrep -x sleep >/dev/null && echo alive')).stdout).toBe('alive\n');
    expect(await failure(Sandbox.pause('nosuchsandbox000000', options))).toBeInstanceOf(SandboxNotFoundError);
  });

  it('with autoResume, a tunnel request resumes the paused sandbox; without, it is a 502', async () => {
    const sandbox = await create({ lifecycle: { onTimeout: 'pause', autoResume: true } });
    await sandbox.commands.run('cd /tmp && echo resumed-by-traffic > index.html && python3 -m http.server 8000 >/dev/null 2>&1', {
      background: true,
    });
    const url = `http://${sandbox.getHost(8000)}/index.html`;
    await eventually(
      () => fetch(url).then((response) => response.status),
      (status) => status === 200,
      'the server in the sandbox',
    );
    expect(await sandbox.pause()).toBe(true);
    const reply = await fetch(url);
    expect(reply.status).toBe(200);
    expect(await reply.text()).toBe('resumed-by-traffic\n');
    expect((await sandbox.getInfo()).state).toBe('running');

    const plain = await create();
    await plain.commands.run('cd /tmp && python3 -m http.server 8000 >/dev/null 2>&1', { background: true });
    const plainUrl = `http://${plain.getHost(8000)}/`;
    await eventually(
      () => fetch(plainUrl).then((response) => response.status),
      (status) => status === 200,
      'the server in the sandbox',
    );
    await plain.pause();
    const refused = await fetch(plainUrl);
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { message: string }).message).toBe(`The sandbox ${plain.sandboxId} is paused`);
  });

  it('pauses instead of killing when the timeout runs out with onTimeout: pause', async () => {
    const sandbox = await create({ timeoutMs: 1_000, lifecycle: { onTimeout: 'pause' } });
    expect((await sandbox.getInfo()).lifecycle).toEqual({ onTimeout: 'pause', autoResume: false });
    await eventually(
      () => sandbox.getInfo(),
      (info) => info.state === 'paused',
      'the sandbox paused by its timeout',
    );
    await Sandbox.connect(sandbox.sandboxId, { ...options, timeoutMs: 120_000 });
    expect((await sandbox.commands.run('echo back')).stdout).toBe('back\n');
  });
});

describe.skipIf(!baseBuilt)(`snapshots${needsBase}`, () => {
  it('snapshots a sandbox into a template that new sandboxes start from, lists and deletes it', async () => {
    const source = await create();
    await source.commands.run('echo from-the-snapshot > /home/user/state.txt');
    const name = `snap-${Date.now()}`;
    const snapshot = await source.createSnapshot({ name });
    expect(snapshot).toEqual({ snapshotId: `emulator/${name}:default`, names: [`emulator/${name}:default`] });
    // The source runs on after its snapshot.
    expect((await source.commands.run('echo still')).stdout).toBe('still\n');

    const child = await create({}, snapshot.snapshotId);
    expect((await child.commands.run('cat /home/user/state.txt')).stdout).toBe('from-the-snapshot\n');
    const info = await child.getInfo();
    expect({ cpuCount: info.cpuCount, memoryMB: info.memoryMB, name: info.name }).toEqual({
      cpuCount: 2,
      memoryMB: 512,
      name: `emulator/${name}`,
    });
    const byName = await create({}, name);
    expect((await byName.commands.run('cat /home/user/state.txt')).stdout).toBe('from-the-snapshot\n');

    const unnamed = await source.createSnapshot();
    expect(unnamed.snapshotId).toMatch(/^[a-z0-9]{20}:default$/);
    expect(unnamed.names).toEqual([]);

    const mine = source.listSnapshots();
    const listed = await mine.nextItems();
    expect(listed.map((entry) => entry.snapshotId)).toEqual([unnamed.snapshotId, snapshot.snapshotId]);
    const paged = Sandbox.listSnapshots({ ...options, sandboxId: source.sandboxId, limit: 1 });
    expect((await paged.nextItems()).map((entry) => entry.snapshotId)).toEqual([unnamed.snapshotId]);
    expect((await paged.nextItems()).map((entry) => entry.snapshotId)).toEqual([snapshot.snapshotId]);
    expect(paged.hasNext).toBe(false);

    expect(await Sandbox.deleteSnapshot(snapshot.snapshotId, options)).toBe(true);
    expect(await Sandbox.deleteSnapshot(snapshot.snapshotId, options)).toBe(false);
    expect(await Sandbox.deleteSnapshot(unnamed.snapshotId, options)).toBe(true);
    const gone = await failure(Sandbox.create(snapshot.snapshotId, options));
    expect(gone.statusCode).toBe(404);
    // Sandboxes started from it keep running.
    expect((await child.commands.run('cat /home/user/state.txt')).stdout).toBe('from-the-snapshot\n');
    const base = await failure(Sandbox.deleteSnapshot('base', options));
    expect(base.statusCode).toBe(403);
  });
});

describe.skipIf(!baseBuilt)(`metrics${needsBase}`, () => {
  it('reports cpu, memory and disk figures read inside the sandbox, one sample per call', async () => {
    const sandbox = await create();
    const [first] = await sandbox.getMetrics();
    expect(first).toMatchObject({ cpuCount: 2, memTotal: 512 * 1024 * 1024, memCache: 0 });
    expect(first!.memUsed).toBeGreaterThan(0);
    expect(first!.diskTotal).toBeGreaterThan(first!.diskUsed);
    expect(first!.cpuUsedPct).toBeGreaterThanOrEqual(0);
    expect(first!.timestamp).toBeInstanceOf(Date);
    const all = await sandbox.getMetrics();
    expect(all).toHaveLength(2);
    const none = await sandbox.getMetrics({ end: new Date(Date.now() - 3600_000) });
    expect(none).toEqual([]);
  });
});

describe.skipIf(!baseBuilt)(`tunnels through getHost${needsBase}`, () => {
  it('reaches any port of the sandbox at http://<port>-<id>.<domain>, and answers 502 for a closed one', async () => {
    const sandbox = await create();
    const host = sandbox.getHost(8000);
    expect(host).toBe(`8000-${sandbox.sandboxId}.${emulator.domain}`);
    await sandbox.commands.run('cd /tmp && echo tunnelled > index.html && python3 -m http.server 8000 >/dev/null 2>&1', {
      background: true,
    });
    const page = await eventually(
      () => fetch(`http://${host}/index.html`).then(async (response) => ({ status: response.status, text: await response.text() })),
      (answer) => answer.status === 200,
      'the server in the sandbox',
    );
    expect(page.text).toBe('tunnelled\n');
    const closed = await fetch(`http://${sandbox.getHost(8001)}/`);
    expect(closed.status).toBe(502);
    expect(((await closed.json()) as { message: string }).message).toContain('port 8001 is not open');
    await sandbox.kill();
    const gone = await fetch(`http://${host}/index.html`);
    expect(gone.status).toBe(502);
  });

  it('passes WebSocket upgrades through', async () => {
    const sandbox = await create();
    await sandbox.commands.run(`${shellQuote(serverCommand('python3', 8080, 8081))} >/dev/null 2>&1`, { background: true });
    const url = `http://${sandbox.getHost(8080)}`;
    await eventually(
      () => fetch(`${url}/ping`).then((response) => response.status),
      (status) => status === 200,
      'the server in the sandbox',
    );
    expect(await (await fetch(`${url}/ping`)).text()).toBe('hello from /ping');
    expect(await webSocketEcho(`http://${sandbox.getHost(8081)}`, 'through the tunnel')).toBe('echo:through the tunnel');
  });

  it('gives the server the Host of network.maskRequestHost, with ${PORT} replaced', async () => {
    const sandbox = await create({ network: { maskRequestHost: 'app-${PORT}.internal.example' } });
    await sandbox.files.write('/tmp/host-echo.py', hostEchoServer);
    await sandbox.commands.run('python3 /tmp/host-echo.py >/dev/null 2>&1', { background: true });
    const answer = await eventually(
      () => fetch(`http://${sandbox.getHost(8000)}/`).then(async (response) => ({ status: response.status, text: await response.text() })),
      (reply) => reply.status === 200,
      'the server in the sandbox',
    );
    expect(answer.text).toBe('app-8000.internal.example');
  });

  it('asks for the traffic access token when public traffic is not allowed', async () => {
    const sandbox = await create({ network: { allowPublicTraffic: false } });
    expect(sandbox.trafficAccessToken).toMatch(/^[A-Za-z0-9]{32}$/);
    await sandbox.commands.run('cd /tmp && echo private > index.html && python3 -m http.server 8000 >/dev/null 2>&1', { background: true });
    const url = `http://${sandbox.getHost(8000)}/index.html`;
    await eventually(
      () => fetch(url, { headers: { 'e2b-traffic-access-token': sandbox.trafficAccessToken! } }).then((response) => response.status),
      (status) => status === 200,
      'the server in the sandbox',
    );
    expect((await fetch(url)).status).toBe(403);
    expect((await fetch(url, { headers: { 'e2b-traffic-access-token': 'wrong' } })).status).toBe(403);
    const reached = await fetch(url, { headers: { 'e2b-traffic-access-token': sandbox.trafficAccessToken! } });
    expect(await reached.text()).toBe('private\n');
    expect((await sandbox.getInfo()).network).toMatchObject({ allowPublicTraffic: false });
  });
});

describe('what the emulator does not serve', () => {
  it('answers fork with a 501 naming the call', async () => {
    const error = await failure(Sandbox.fork('nosuchsandbox000000', options));
    expect(error).toBeInstanceOf(SandboxError);
    expect(error.message).toContain('501: The E2B emulator (control plane) does not implement POST /sandboxes/nosuchsandbox000000/fork');
  });
});
