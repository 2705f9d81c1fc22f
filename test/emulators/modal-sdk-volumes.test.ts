/**
 * The Modal emulator's volumes, create-time validation, registry images and background calls,
 * each through the real `modal` SDK's own calls, written as its docs show them.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModalClient, type App, type Image, type Sandbox, type SandboxCreateParams } from 'modal';
import { startModalEmulator, type ModalEmulator } from './modal/modal-emulator.js';

const credentials = { tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' as const };

let emulator: ModalEmulator;
let client: ModalClient;
let app: App;
let image: Image;
const sandboxes: Sandbox[] = [];

/** A ModalClient of the emulator at `url` (the SDK reads its server URL when a client is made). */
function clientOf(url: string): ModalClient {
  process.env.MODAL_SERVER_URL = url;
  return new ModalClient(credentials);
}

async function create(params: SandboxCreateParams = {}, withImage: Image = image, onClient: ModalClient = client): Promise<Sandbox> {
  const owner = onClient === client ? app : await onClient.apps.fromName('sdk-volumes', { createIfMissing: true });
  const sandbox = await onClient.sandboxes.create(owner, withImage, params);
  sandboxes.push(sandbox);
  return sandbox;
}

async function sh(sandbox: Sandbox, script: string): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const process = await sandbox.exec(['/bin/sh', '-c', script]);
  const [stdout, stderr] = await Promise.all([process.stdout.readText(), process.stderr.readText()]);
  return { stdout, stderr, exitCode: await process.wait() };
}

/** Polls `check` until it resolves true (bounded: the test's own time limit ends it otherwise). */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 200));
}

describe('modal emulator through the SDK: volumes, validation, images, background calls', () => {
  beforeAll(async () => {
    emulator = await startModalEmulator();
    client = clientOf(emulator.url);
    app = await client.apps.fromName('sdk-volumes', { createIfMissing: true });
    // Any tag but python and alpine runs on the local host image.
    image = client.images.fromRegistry('debian:bookworm-slim');
  });
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    client?.close();
    await emulator?.close();
  }, 120_000);

  describe('volumes', () => {
    it('creates a mount subPath that does not exist yet; what is written there is in the volume at that path', async () => {
      const volume = await client.volumes.fromName('sub-path', { createIfMissing: true });
      const writer = await create({ volumes: { '/data': volume.withMountOptions({ subPath: 'one/two' }) } });
      expect(await sh(writer, 'test -d /data && ls -A /data | wc -l')).toMatchObject({ stdout: '0\n', exitCode: 0 });
      expect((await sh(writer, 'echo hello > /data/file')).exitCode).toBe(0);
      await writer.terminate();

      const reader = await create({ volumes: { '/data': volume } });
      expect(await sh(reader, 'cat /data/one/two/file')).toMatchObject({ stdout: 'hello\n', exitCode: 0 });
    });

    it("a sandbox sees another's writes only once the writer committed (at its end) and it reloaded its volumes", async () => {
      const volume = await client.volumes.fromName('views', { createIfMissing: true });
      const writer = await create({ volumes: { '/data': volume } });
      const reader = await create({ volumes: { '/data': volume } });
      await sh(writer, 'echo first > /data/shared && mkdir /data/dir && echo x > /data/dir/nested');

      // Uncommitted: the reader's view does not have it, even after a reload.
      expect((await sh(reader, 'cat /data/shared')).exitCode).not.toBe(0);
      await reader.reloadVolumes();
      expect((await sh(reader, 'cat /data/shared')).exitCode).not.toBe(0);

      // Modal commits a sandbox's volumes when it ends.
      await writer.terminate();
      expect((await sh(reader, 'cat /data/shared')).exitCode).not.toBe(0);
      await reader.reloadVolumes();
      expect(await sh(reader, 'cat /data/shared /data/dir/nested')).toMatchObject({ stdout: 'first\nx\n', exitCode: 0 });

      // A sandbox created after the commit starts from it.
      const later = await create({ volumes: { '/data': volume } });
      expect(await sh(later, 'cat /data/shared')).toMatchObject({ stdout: 'first\n', exitCode: 0 });
    });

    it('a commit publishes changes file by file: removals too, and files only another sandbox changed stay', async () => {
      const volume = await client.volumes.fromName('merge', { createIfMissing: true });
      const seed = await create({ volumes: { '/data': volume } });
      await sh(seed, 'echo a > /data/a && echo b > /data/b && echo gone > /data/gone');
      await seed.terminate();

      const left = await create({ volumes: { '/data': volume } });
      const right = await create({ volumes: { '/data': volume } });
      await sh(left, 'echo a2 > /data/a && rm /data/gone');
      await sh(right, 'echo b2 > /data/b');
      await left.terminate();
      await right.terminate();

      const check = await create({ volumes: { '/data': volume } });
      expect(await sh(check, 'cat /data/a /data/b; test -e /data/gone; echo $?')).toMatchObject({ stdout: 'a2\nb2\n1\n' });
    });

    it('VolumeCommit (the call a container makes) publishes a running sandbox’s writes', async () => {
      const volume = await client.volumes.fromName('commit-call', { createIfMissing: true });
      const writer = await create({ volumes: { '/data': volume } });
      const reader = await create({ volumes: { '/data': volume.withMountOptions({ readOnly: true }) } });
      await sh(writer, 'echo committed > /data/file');
      // The SDK's own client for the control plane (ModalClient.cpClient): containers call VolumeCommit.
      await client.cpClient.volumeCommit({ volumeId: volume.volumeId });
      await reader.reloadVolumes();
      expect(await sh(reader, 'cat /data/file')).toMatchObject({ stdout: 'committed\n', exitCode: 0 });
      expect(await sh(writer, 'echo still > /data/file && cat /data/file')).toMatchObject({ stdout: 'still\n', exitCode: 0 });
    });

    it('`sync <mountpoint>` in the sandbox commits a v2 volume (only a v2 one), as Modal documents', async () => {
      const v2 = await client.volumes.fromName('sync-v2', { createIfMissing: true, version: 2 });
      const v1 = await client.volumes.fromName('sync-v1', { createIfMissing: true });
      const writer = await create({ volumes: { '/v2': v2, '/v1': v1 } });
      const reader = await create({ volumes: { '/v2': v2, '/v1': v1 } });
      await sh(writer, 'echo two > /v2/file && echo one > /v1/file');
      for (const mount of ['/v2', '/v1']) expect(await (await writer.exec(['sync', mount])).wait()).toBe(0);
      await reader.reloadVolumes();
      expect(await sh(reader, 'cat /v2/file; test -e /v1/file; echo $?')).toMatchObject({ stdout: 'two\n1\n' });
    });

    it('a read-only mount refuses writes, and nothing reaches the volume', async () => {
      const volume = await client.volumes.fromName('read-only', { createIfMissing: true });
      const sandbox = await create({ volumes: { '/data': volume.withMountOptions({ readOnly: true }) } });
      const write = await sh(sandbox, 'echo x > /data/file');
      expect(write.exitCode).not.toBe(0);
      expect(write.stderr).toMatch(/read-only/i);
      await sandbox.terminate();
      const check = await create({ volumes: { '/data': volume } });
      expect((await sh(check, 'ls -A /data')).stdout).toBe('');
    });

    it('mounting one volume at two paths is refused, as Modal does', async () => {
      const volume = await client.volumes.fromName('twice', { createIfMissing: true });
      await expect(create({ volumes: { '/a': volume, '/b': volume } })).rejects.toThrow(/more than one path/);
    });

    it('a mount path that is relative or the root is refused', async () => {
      const volume = await client.volumes.fromName('mount-paths', { createIfMissing: true });
      await expect(create({ volumes: { data: volume } })).rejects.toThrow(/absolute path/);
      await expect(create({ volumes: { '/': volume } })).rejects.toThrow(/absolute path/);
    });

    it('concurrent lookups that create one name get one volume', async () => {
      const found = await Promise.all([1, 2, 3, 4].map(() => client.volumes.fromName('concurrent', { createIfMissing: true })));
      expect(new Set(found.map((volume) => volume.volumeId)).size).toBe(1);
    });

    it('keeps the file system version a volume was created with, which the SDK checks', async () => {
      await client.volumes.fromName('versioned', { createIfMissing: true, version: 2 });
      await expect(client.volumes.fromName('versioned', { version: 2 })).resolves.toMatchObject({ name: 'versioned' });
      await expect(client.volumes.fromName('versioned', { version: 1 })).rejects.toThrow(/has version v2, not v1/);
    });

    it('a named volume deleted with volumes.delete is gone', async () => {
      await client.volumes.fromName('deleted', { createIfMissing: true });
      await client.volumes.delete('deleted');
      await expect(client.volumes.fromName('deleted')).rejects.toThrow(/not found/i);
    });
  });

  describe('ephemeral volumes (an emulator whose ephemeral volumes outlive their last heartbeat by 1.5 s)', () => {
    let shortLived: ModalEmulator;
    let shortClient: ModalClient;
    beforeAll(async () => {
      shortLived = await startModalEmulator({ ephemeralVolumeTimeoutMs: 1500 });
      shortClient = clientOf(shortLived.url);
    });
    afterAll(async () => {
      shortClient?.close();
      await shortLived?.close();
    }, 60_000);

    it('answers the heartbeat that volumes.ephemeral() starts, and the volume mounts', async () => {
      const volume = await shortClient.volumes.ephemeral();
      await eventually(async () => (shortLived.calls.get('volumeHeartbeat') ?? 0) >= 1);
      const sandbox = await create({ volumes: { '/scratch': volume } }, shortClient.images.fromRegistry('debian:bookworm'), shortClient);
      expect(await sh(sandbox, 'echo ok > /scratch/f && cat /scratch/f')).toMatchObject({ stdout: 'ok\n', exitCode: 0 });
      volume.closeEphemeral();
    });

    it('lives while heartbeats arrive and is deleted once they stop (closeEphemeral)', async () => {
      const volume = await shortClient.volumes.ephemeral();
      const mount = () => create({ volumes: { '/scratch': volume } }, shortClient.images.fromRegistry('debian:bookworm'), shortClient);
      // The SDK beats every 300 s; beat here as its heartbeat manager does, faster than the 1.5 s timeout.
      const until = Date.now() + 4500;
      while (Date.now() < until) {
        await shortClient.cpClient.volumeHeartbeat({ volumeId: volume.volumeId });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await expect(mount()).resolves.toBeDefined();

      volume.closeEphemeral();
      await eventually(() =>
        mount().then(
          () => false,
          (error: Error) => /not found/i.test(error.message),
        ),
      );
    }, 60_000);
  });

  describe('create-time validation', () => {
    it.each<[string, SandboxCreateParams, RegExp, grpc.status]>([
      ['an unknown cloud', { cloud: 'azure' }, /cloud.*azure/, grpc.status.INVALID_ARGUMENT],
      ['an unknown region', { regions: ['mars-north'] }, /regions.*mars-north/, grpc.status.INVALID_ARGUMENT],
      ['a region that is no region name', { regions: ['us east 1'] }, /regions/, grpc.status.INVALID_ARGUMENT],
      ['the vm runtime (the SDK itself refuses other names)', { runtime: 'vm' }, /runtime "vm"/, grpc.status.FAILED_PRECONDITION],
      ['i6pn', { i6pn: true }, /i6pn/, grpc.status.FAILED_PRECONDITION],
      ['an OIDC identity token', { includeOidcIdentityToken: true }, /includeOidcIdentityToken/, grpc.status.FAILED_PRECONDITION],
      ['a custom domain', { customDomain: 'sandboxes.example.test' }, /customDomain/, grpc.status.FAILED_PRECONDITION],
      ['an inbound CIDR allowlist', { inboundCidrAllowlist: ['192.0.2.0/24'] }, /inboundCidrAllowlist/, grpc.status.FAILED_PRECONDITION],
      ['experimental options', { experimentalOptions: { anything: true } }, /experimentalOptions/, grpc.status.FAILED_PRECONDITION],
      ['memory snapshots', { experimentalEnableSnapshot: true }, /experimentalEnableSnapshot/, grpc.status.FAILED_PRECONDITION],
    ])('refuses %s loudly', async (_name, params, message, code) => {
      const error = await create(params).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      // The SDK passes the gRPC status through (nice-grpc's ClientError).
      expect(error).toMatchObject({ code });
    });

    it('accepts the clouds and regions Modal documents', async () => {
      const sandbox = await create({ cloud: 'aws', regions: ['us-east-1', 'us-east', 'eu'] });
      expect((await sh(sandbox, 'true')).exitCode).toBe(0);
      await sandbox.terminate();
      const other = await create({ cloud: 'gcp', regions: ['us-east4'] });
      expect((await sh(other, 'true')).exitCode).toBe(0);
    });
  });

  describe('registry tags', () => {
    it('a python tag has python and python3 with the standard library', async () => {
      const sandbox = await create({}, client.images.fromRegistry('python:3.13-slim'));
      const result = await sh(sandbox, 'python -c "import http.server, json; print(json.dumps([1 + 1]))" && python3 -c "print(3)"');
      expect(result).toMatchObject({ stdout: '[2]\n3\n', exitCode: 0 });
    });

    it('a python image from another registry path is the python image too', async () => {
      const sandbox = await create({}, client.images.fromRegistry('docker.io/library/python:3.12'));
      expect(await sh(sandbox, 'python --version')).toMatchObject({ exitCode: 0 });
    });

    it("an alpine tag's /bin/sh is busybox, with busybox's exit codes", async () => {
      const sandbox = await create({}, client.images.fromRegistry('alpine:3.20'));
      expect(await sh(sandbox, 'readlink -f /bin/sh')).toMatchObject({ stdout: '/bin/busybox\n', exitCode: 0 });
      expect((await sh(sandbox, 'no-such-command')).exitCode).toBe(127);
      expect((await sh(sandbox, 'exit 300')).exitCode).toBe(44);
      expect((await sh(sandbox, 'test -e /usr/bin/python3; echo $?')).stdout).toBe('1\n');
    });
  });

  describe('calls the SDK makes by itself', () => {
    it('an SDK session left running with an ephemeral volume and a sandbox raises no unhandled rejection', async () => {
      const rejections: unknown[] = [];
      const onRejection = (reason: unknown) => rejections.push(reason);
      process.on('unhandledRejection', onRejection);
      const session = clientOf(emulator.url);
      try {
        const volume = await session.volumes.ephemeral();
        const sessionApp = await session.apps.fromName('sdk-background', { createIfMissing: true });
        const sandbox = await session.sandboxes.create(sessionApp, session.images.fromRegistry('debian:bookworm'), {
          volumes: { '/scratch': volume },
        });
        sandboxes.push(sandbox);
        expect((await sh(sandbox, 'echo hi > /scratch/f')).exitCode).toBe(0);
        // Idle past the channels' keepalive pings (30 s) while the heartbeat manager and the
        // router client's idle timer run.
        await new Promise((resolve) => setTimeout(resolve, 35_000));
        expect((await sh(sandbox, 'cat /scratch/f')).stdout).toBe('hi\n');
        await sandbox.terminate();
        volume.closeEphemeral();
        expect(emulator.calls.get('volumeHeartbeat')).toBeGreaterThanOrEqual(1);
      } finally {
        session.close();
        process.off('unhandledRejection', onRejection);
      }
      expect(rejections).toEqual([]);
    }, 90_000);

    it('a call the emulator leaves out fails with UNIMPLEMENTED naming the method', async () => {
      await expect(client.queues.ephemeral()).rejects.toThrow(/QueueGetOrCreate/);
    });
  });
});
