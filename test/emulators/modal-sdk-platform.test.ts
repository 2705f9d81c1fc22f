/**
 * The Modal emulator's platform behaviours through the real `modal` SDK's own calls, written as
 * a Modal user would write them: directory mounts and snapshots (`mountImage`, `unmountImage`,
 * `snapshotDirectory` with TTLs), connect tokens, readiness probes (`readinessProbe` +
 * `waitUntilReady`) and sidecars (`experimentalSidecars`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  type App,
  InvalidError,
  ModalClient,
  NotFoundError,
  Probe,
  type Sandbox,
  SandboxFilesystemNotFoundError,
  TimeoutError,
} from 'modal';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { emulatorImagesDir } from './modal/modal-registry-images.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from './modal/spawn.js';

let emulator: ModalEmulatorProcess | undefined;
let modal: ModalClient;
let app: App;
const started: Sandbox[] = [];
const busyboxBuilt = existsSync(join(emulatorImagesDir(), 'busybox', '.sandport-complete'));

/** A python HTTP server that answers with the path and the X-Verified-User-Data header it got. */
const echoServer = (port: number) => [
  'python3',
  '-c',
  [
    'import http.server, json',
    'class H(http.server.BaseHTTPRequestHandler):',
    '    def do_GET(self):',
    "        body = json.dumps({'path': self.path, 'user': self.headers.get('X-Verified-User-Data'), 'auth': self.headers.get('Authorization')}).encode()",
    '        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)',
    '    def log_message(self, *args): pass',
    `http.server.HTTPServer(('127.0.0.1', ${port}), H).serve_forever()`,
  ].join('\n'),
];

async function sandbox(params: Parameters<ModalClient['sandboxes']['create']>[2] = {}): Promise<Sandbox> {
  const image = modal.images.fromRegistry('debian:bookworm-slim');
  const sb = await modal.sandboxes.create(app, image, { timeoutMs: 10 * 60 * 1000, ...params });
  started.push(sb);
  return sb;
}

async function run(sb: Pick<Sandbox, 'exec'>, script: string): Promise<{ stdout: string; exitCode: number }> {
  const process = await sb.exec(['sh', '-c', script]);
  const [stdout, exitCode] = await Promise.all([process.stdout.readText(), process.wait()]);
  return { stdout, exitCode };
}

/** Repeats `attempt` until it resolves, for state that the emulator changes on its own clock. */
async function eventually<T>(attempt: () => Promise<T>, tries = 100): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe('modal emulator through the real SDK: platform calls', () => {
  beforeAll(async () => {
    emulator = await spawnModalEmulator();
    process.env.MODAL_SERVER_URL = emulator.url;
    modal = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
    app = await modal.apps.fromName('sdk-platform', { createIfMissing: true });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(started.map((sb) => sb.terminate().catch(() => undefined)));
    modal?.close();
    await emulator?.close();
  }, 120_000);

  describe('directory mounts and snapshots', () => {
    it('mounts an empty directory over a path and brings back what was there on unmount', async () => {
      const sb = await sandbox();
      await sb.filesystem.writeText('kept', '/data/keep.txt');
      await sb.mountImage('/data');
      expect(await run(sb, 'ls -A /data')).toEqual({ stdout: '', exitCode: 0 });
      await sb.filesystem.writeText('scratch', '/data/new.txt');
      await sb.unmountImage('/data');
      expect((await run(sb, 'ls -A /data')).stdout).toBe('keep.txt\n');
      await sb.mountImage('/fresh/mount');
      expect(await run(sb, 'test -d /fresh/mount && ls -A /fresh/mount')).toEqual({ stdout: '', exitCode: 0 });
    }, 60_000);

    it('snapshots a directory into an image that mounts in another sandbox, and refuses to boot one from it', async () => {
      const source = await sandbox();
      await run(source, 'mkdir -p /work/project/src && printf hello > /work/project/a.txt && printf nested > /work/project/src/b.txt');
      const image = await source.snapshotDirectory('/work/project');
      expect(image.imageId).toMatch(/^im-/);

      const target = await sandbox();
      await target.mountImage('/restored', image);
      expect(await target.filesystem.readText('/restored/a.txt')).toBe('hello');
      expect(await target.filesystem.readText('/restored/src/b.txt')).toBe('nested');
      // The same image mounts again in the sandbox it came from, at another path.
      await source.mountImage('/copy', image);
      expect((await run(source, 'cat /copy/src/b.txt')).stdout).toBe('nested');
      expect((await modal.images.fromId(image.imageId)).imageId).toBe(image.imageId);

      await expect(modal.sandboxes.create(app, image)).rejects.toThrow(/directory snapshot/);
    }, 90_000);

    it('makes a directory snapshot NotFound once its TTL has passed', async () => {
      const sb = await sandbox();
      await sb.filesystem.writeText('short-lived', '/tmp/ttl/file.txt');
      const image = await sb.snapshotDirectory('/tmp/ttl', { ttlMs: 1000 });
      const forever = await sb.snapshotDirectory('/tmp/ttl', { ttlMs: null });
      await eventually(() => expect(modal.images.fromId(image.imageId)).rejects.toThrow(NotFoundError));
      await expect(sb.mountImage('/expired', image)).rejects.toMatchObject({ code: 5 }); // NOT_FOUND
      await sb.mountImage('/kept', forever);
      expect(await sb.filesystem.readText('/kept/file.txt')).toBe('short-lived');
    }, 60_000);

    it('fails loudly where it cannot emulate: a missing directory, an unmounted path, the host view as a mount', async () => {
      const sb = await sandbox();
      await expect(sb.snapshotDirectory('/no/such/dir')).rejects.toMatchObject({
        code: 5,
        details: expect.stringContaining('does not exist'),
      });
      await expect(sb.unmountImage('/never/mounted')).rejects.toMatchObject({
        code: 9,
        details: expect.stringContaining('nothing is mounted'),
      });
      // The emulator runs debian tags on the host's own view (the host's /usr).
      const registry = await modal.images.fromRegistry('debian:bookworm-slim').build(app);
      await expect(sb.mountImage('/debian', registry)).rejects.toMatchObject({
        code: 9, // FAILED_PRECONDITION
        details: expect.stringContaining("host's own view"),
      });
      await sb.mountImage('/twice');
      await expect(sb.mountImage('/twice')).rejects.toMatchObject({
        code: 9,
        details: expect.stringContaining('already has an image mounted'),
      });
    }, 60_000);

    it.skipIf(!busyboxBuilt)(
      `copies a registry image's filesystem into the mount${busyboxBuilt ? '' : ' (skipped: scripts/build-emulator-images.sh has not built the busybox image that alpine tags run on)'}`,
      async () => {
        const sb = await sandbox();
        const alpine = await modal.images.fromRegistry('alpine:3.20').build(app);
        await sb.mountImage('/alpine', alpine);
        expect(await run(sb, '/alpine/bin/busybox echo from-alpine')).toEqual({ stdout: 'from-alpine\n', exitCode: 0 });
        await sb.unmountImage('/alpine');
        expect((await run(sb, 'ls -A /alpine')).stdout).toBe('');
      },
      120_000,
    );
  });

  describe('connect tokens', () => {
    it('returns a URL and token that reach the sandbox port 8080 with the user metadata verified', async () => {
      const sb = await sandbox({ command: echoServer(8080), readinessProbe: Probe.withTcp(8080) });
      await sb.waitUntilReady(30_000);
      const credentials = await sb.createConnectToken({ userMetadata: '{"user_id":"u-42"}' });
      expect(credentials).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), token: expect.any(String) });

      const viaHeader = await fetch(`${credentials.url}/hello?x=1`, {
        headers: { Authorization: `Bearer ${credentials.token}`, 'X-Verified-User-Data': 'spoofed' },
      });
      expect(viaHeader.status).toBe(200);
      expect(await viaHeader.json()).toEqual({ path: '/hello?x=1', user: '{"user_id":"u-42"}', auth: null });

      const viaQuery = await fetch(`${credentials.url}/q?_modal_connect_token=${credentials.token}&y=2`);
      expect(await viaQuery.json()).toMatchObject({ path: '/q?y=2', user: '{"user_id":"u-42"}' });

      expect((await fetch(`${credentials.url}/`)).status).toBe(401);
      expect((await fetch(`${credentials.url}/`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    }, 60_000);

    it('routes to the port it was made for, and answers 502 when nothing listens there', async () => {
      const sb = await sandbox({ command: echoServer(9000), readinessProbe: Probe.withTcp(9000) });
      await sb.waitUntilReady(30_000);
      const onPort = await sb.createConnectToken({ port: 9000 });
      const answer = await fetch(`${onPort.url}/p`, { headers: { Authorization: `Bearer ${onPort.token}` } });
      expect(await answer.json()).toMatchObject({ path: '/p', user: null });
      const unused = await sb.createConnectToken();
      expect((await fetch(unused.url, { headers: { Authorization: `Bearer ${unused.token}` } })).status).toBe(502);
      await expect(sb.createConnectToken({ port: 70_000 })).rejects.toThrow(InvalidError);
    }, 60_000);
  });

  describe('readiness probes', () => {
    it('waits for an exec probe, raising TimeoutError while it fails', async () => {
      const sb = await sandbox({ readinessProbe: Probe.withExec(['test', '-f', '/tmp/ready'], { intervalMs: 50 }) });
      await expect(sb.waitUntilReady(1500)).rejects.toThrow(TimeoutError);
      await sb.filesystem.writeText('', '/tmp/ready');
      await sb.waitUntilReady(30_000);
      await sb.waitUntilReady(1000); // once ready, ready for good
    }, 60_000);

    it('waits for a TCP probe until a server listens on the port', async () => {
      const sb = await sandbox({ readinessProbe: Probe.withTcp(7000) });
      await expect(sb.waitUntilReady(1000)).rejects.toThrow(TimeoutError);
      await sb.exec(echoServer(7000));
      await sb.waitUntilReady(30_000);
      expect(
        (await run(sb, 'python3 -c "import urllib.request; print(urllib.request.urlopen(\'http://127.0.0.1:7000/x\').status)"')).stdout,
      ).toBe('200\n');
    }, 60_000);

    it('refuses waitUntilReady on a sandbox created without a probe', async () => {
      const sb = await sandbox();
      await expect(sb.waitUntilReady(5000)).rejects.toMatchObject({ code: 9, details: expect.stringContaining('readinessProbe') });
    }, 60_000);
  });

  describe('sidecars', () => {
    it('runs a sidecar from its own image with its own env and filesystem, and execs in it', async () => {
      const sb = await sandbox();
      const image = await modal.images.fromRegistry('debian:bookworm-slim').build(app);
      const sidecar = await sb.experimentalSidecars.create('helper', image, {
        command: ['sh', '-c', 'echo started > /tmp/boot; exec sleep 600'],
        env: { ROLE: 'helper' },
        workdir: '/tmp',
      });
      expect(sidecar.containerName).toBe('helper');
      expect(sidecar.containerId).toMatch(/^ctr-/);

      expect(await run(sidecar, 'echo "$ROLE in $(pwd)"')).toEqual({ stdout: 'helper in /tmp\n', exitCode: 0 });
      await eventually(async () => expect(await sidecar.filesystem.readText('/tmp/boot')).toBe('started\n'));
      await sidecar.filesystem.writeText('only here', '/tmp/side.txt');
      await expect(sb.filesystem.readText('/tmp/side.txt')).rejects.toThrow(SandboxFilesystemNotFoundError);
      expect((await run(sb, 'echo "[$ROLE]"')).stdout).toBe('[]\n');

      const again = await sb.experimentalSidecars.get('helper');
      expect(again.containerId).toBe(sidecar.containerId);
      expect((await sb.experimentalSidecars.list()).map((one) => one.containerName)).toEqual(['helper']);
      await expect(sb.experimentalSidecars.create('helper', image)).rejects.toThrow(AlreadyExistsError);
      await expect(sb.experimentalSidecars.create('main', image)).rejects.toThrow(InvalidError);
      await expect(sb.experimentalSidecars.get('nobody')).rejects.toThrow(NotFoundError);

      expect(await sidecar.poll()).toBeNull();
      expect(await sidecar.terminate({ wait: true })).toBe(137);
      await expect(sidecar.exec(['true'])).rejects.toThrow();
      expect(await sb.experimentalSidecars.list()).toEqual([]);
      expect((await sb.experimentalSidecars.list({ includeTerminated: true })).map((one) => one.containerId)).toEqual([
        sidecar.containerId,
      ]);
    }, 90_000);

    it('reports a sidecar command exit code through wait and poll', async () => {
      const sb = await sandbox();
      const image = await modal.images.fromRegistry('debian:bookworm-slim').build(app);
      const sidecar = await sb.experimentalSidecars.create('exits', image, { command: ['sh', '-c', 'exit 3'] });
      expect(await sidecar.wait()).toBe(3);
      expect(await sidecar.poll()).toBe(3);
      const info = await sb.experimentalSidecars.get('exits', { includeTerminated: true });
      expect(await info.wait()).toBe(3);
    }, 60_000);

    it('creates through the router when the control-plane create is off, and mounts and snapshots in the sidecar', async () => {
      const sb = await sandbox();
      const image = await modal.images.fromRegistry('debian:bookworm-slim').build(app);
      process.env.MODAL_USE_CONTROL_PLANE_SIDECAR_CREATE = '0';
      const sidecar = await sb.experimentalSidecars.create('router', image).finally(() => {
        delete process.env.MODAL_USE_CONTROL_PLANE_SIDECAR_CREATE;
      });
      await sidecar.filesystem.writeText('from the sidecar', '/srv/out/file.txt');
      const snapshot = await sidecar.snapshotDirectory('/srv/out');
      await sb.mountImage('/in', snapshot);
      expect(await sb.filesystem.readText('/in/file.txt')).toBe('from the sidecar');
      await sidecar.mountImage('/scratch');
      expect(await run(sidecar, 'ls -A /scratch; echo done')).toEqual({ stdout: 'done\n', exitCode: 0 });
      await sidecar.unmountImage('/scratch');
    }, 90_000);

    it('ends the sidecars with their sandbox', async () => {
      const sb = await sandbox();
      const image = await modal.images.fromRegistry('debian:bookworm-slim').build(app);
      const sidecar = await sb.experimentalSidecars.create('short', image);
      await sb.terminate();
      // The sandbox is gone, so its router answers NOT_FOUND for everything in it.
      await expect(sidecar.poll()).rejects.toThrow();
    }, 60_000);
  });
});
