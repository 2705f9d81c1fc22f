/**
 * The emulator's sandbox API as a user of the real `@daytonaio/sdk` sees it, through the SDK's
 * own calls as Daytona's docs show them (no sandport adapter): create (default snapshot, name,
 * labels, env, intervals, TTL), get by id and by name, list with labels and pagination,
 * setLabels, stop / start (files kept, processes gone), pause / start (processes kept), archive,
 * delete, the interval and TTL setters, network settings, volumes, fork, the state events over
 * socket.io next to the SDK's polling mode, and the error classes and status codes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  Daytona,
  DaytonaAuthenticationError,
  DaytonaConflictError,
  DaytonaError,
  DaytonaNotFoundError,
  DaytonaValidationError,
  type CreateSandboxFromSnapshotParams,
  type Sandbox,
} from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaytonaEmulator, type DaytonaEmulator } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

let emulator: DaytonaEmulator;
let daytona: Daytona;
const made: Sandbox[] = [];

beforeAll(async () => {
  if (!imageBuilt) return;
  emulator = await startDaytonaEmulator({ apiKey: 'dtn_lifecycle' });
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: 'dtn_lifecycle', target: 'us' });
});

afterAll(async () => {
  for (const sandbox of made) await sandbox.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
});

async function create(params?: CreateSandboxFromSnapshotParams, client = daytona): Promise<Sandbox> {
  const sandbox = await client.create(params);
  made.push(sandbox);
  return sandbox;
}

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

async function listAll(query?: Parameters<Daytona['list']>[0]): Promise<Sandbox[]> {
  const all: Sandbox[] = [];
  for await (const sandbox of daytona.list(query)) all.push(sandbox);
  return all;
}

describe.skipIf(!imageBuilt)(`Daytona emulator: sandboxes through the SDK${needsImage}`, () => {
  it('create answers a started sandbox with its settings; get finds it by id and by name', async () => {
    const sandbox = await create({
      name: 'lifecycle-one',
      labels: { team: 'core' },
      envVars: { FROM_CREATE: 'yes' },
      autoStopInterval: 30,
      autoArchiveInterval: 60,
      ttlMinutes: 120,
    });
    expect(sandbox.state).toBe('started');
    expect(sandbox.name).toBe('lifecycle-one');
    expect(sandbox.labels).toMatchObject({ team: 'core', 'code-toolbox-language': 'python' });
    expect(sandbox.user).toBe('daytona');
    expect(sandbox.autoStopInterval).toBe(30);
    expect(sandbox.autoArchiveInterval).toBe(60);
    expect(sandbox.autoDestroyAt).toEqual(expect.any(String));
    expect(sandbox.snapshot).toBe('daytona-small');
    expect((await sandbox.process.executeCommand('echo "$FROM_CREATE"')).result).toBe('yes\n');
    const byId = await daytona.get(sandbox.id);
    const byName = await daytona.get('lifecycle-one');
    expect([byId.id, byName.id]).toEqual([sandbox.id, sandbox.id]);
    expect(byName.env).toMatchObject({ FROM_CREATE: 'yes' });
  });

  it('a second sandbox with a running one’s name is a DaytonaConflictError (409)', async () => {
    await create({ name: 'lifecycle-dup' });
    const error = await failure(daytona.create({ name: 'lifecycle-dup' }));
    expect(error).toBeInstanceOf(DaytonaConflictError);
    expect((error as DaytonaError).statusCode).toBe(409);
  });

  it('an unknown sandbox is a DaytonaNotFoundError (404); a wrong key a DaytonaAuthenticationError (401)', async () => {
    const missing = await failure(daytona.get('no-such-sandbox'));
    expect(missing).toBeInstanceOf(DaytonaNotFoundError);
    expect((missing as DaytonaError).statusCode).toBe(404);
    const stranger = new Daytona({ apiUrl: emulator.url, apiKey: 'wrong', target: 'us', useDeprecatedPolling: true });
    const refused = await failure(stranger.get('anything'));
    expect(refused).toBeInstanceOf(DaytonaAuthenticationError);
    expect((refused as DaytonaError).statusCode).toBe(401);
    await stranger[Symbol.asyncDispose]();
  });

  it('a bad create body is a DaytonaValidationError (400)', async () => {
    const error = await failure(daytona.create({ snapshot: 'no-such-snapshot' }));
    expect(error).toBeInstanceOf(DaytonaNotFoundError);
    const bad = await failure(daytona.create({ volumes: [{ volumeId: 'no-such-volume', mountPath: 'relative' }] }));
    expect(bad).toBeInstanceOf(DaytonaValidationError);
  });

  it('GPU resources: an unknown type is a DaytonaValidationError (400) naming the types; a GPU count is a 501 (no GPUs here)', async () => {
    const image = 'debian:bookworm';
    const unknownType = await failure(daytona.create({ image, resources: { gpu: 1, gpuType: 'Z999' as never } }));
    expect(unknownType).toBeInstanceOf(DaytonaValidationError);
    expect(unknownType.message).toMatch(/gpuType.*one of the following values: H100, H200/);
    const noGpus = await failure(daytona.create({ image, resources: { gpu: 1, gpuType: 'H100' } }));
    expect(noGpus).toBeInstanceOf(DaytonaError);
    expect((noGpus as DaytonaError).statusCode).toBe(501);
    expect(noGpus.message).toMatch(/The Daytona emulator has no GPUs: POST \/api\/sandbox with gpu 1 is not emulated/);
    // Nothing was left behind by the refused creates.
    expect((await listAll()).filter((sandbox) => sandbox.gpu > 0)).toEqual([]);
  });

  it('list filters by labels and pages through every match', async () => {
    const tagged = await Promise.all([1, 2, 3].map((index) => create({ labels: { batch: 'paging', index: String(index) } })));
    const found = await listAll({ labels: { batch: 'paging' }, limit: 2 });
    expect(found.map((sandbox) => sandbox.id).sort()).toEqual(tagged.map((sandbox) => sandbox.id).sort());
    const one = await listAll({ labels: { batch: 'paging', index: '2' } });
    expect(one.map((sandbox) => sandbox.id)).toEqual([tagged[1]!.id]);
    expect(emulator.calls.get('GET /api/sandbox')).toBeGreaterThanOrEqual(2);
  });

  it('setLabels replaces the labels, and list sees the new ones', async () => {
    const sandbox = await create({ labels: { old: 'label' } });
    expect(await sandbox.setLabels({ fresh: 'label' })).toEqual({ fresh: 'label' });
    expect((await listAll({ labels: { fresh: 'label' } })).map((found) => found.id)).toEqual([sandbox.id]);
    expect(await listAll({ labels: { old: 'label' } })).toEqual([]);
  });

  it('stop keeps the files and ends the processes; start brings it back; the SDK sees each state', async () => {
    const sandbox = await create();
    await sandbox.fs.uploadFile(Buffer.from('kept'), '/home/daytona/kept.txt');
    await sandbox.process.createSession('before-stop');
    await sandbox.process.executeSessionCommand('before-stop', { command: 'sleep 600', runAsync: true });
    await sandbox.stop();
    expect(sandbox.state).toBe('stopped');
    expect((await daytona.get(sandbox.id)).state).toBe('stopped');
    expect(await failure(sandbox.process.executeCommand('true'))).toBeInstanceOf(DaytonaError);
    await sandbox.start();
    expect(sandbox.state).toBe('started');
    expect((await sandbox.fs.downloadFile('/home/daytona/kept.txt')).toString()).toBe('kept');
    expect((await sandbox.process.executeCommand('pgrep -f "sleep 60[0]" || echo none')).result.trim()).toBe('none');
    expect(await sandbox.process.listSessions()).toEqual([]);
  });

  it('pause keeps the processes and start resumes them', async () => {
    const sandbox = await create();
    await sandbox.process.createSession('paused');
    const started = await sandbox.process.executeSessionCommand('paused', { command: 'sleep 600', runAsync: true });
    await sandbox.pause();
    expect(sandbox.state).toBe('paused');
    await sandbox.start();
    expect(sandbox.state).toBe('started');
    const command = await sandbox.process.getSessionCommand('paused', started.cmdId!);
    expect(command.exitCode).toBeUndefined();
  });

  it('archive a stopped sandbox, start it again from the archive', async () => {
    const sandbox = await create();
    await sandbox.fs.uploadFile(Buffer.from('archived'), '/tmp/archived.txt');
    await sandbox.stop();
    await sandbox.archive();
    expect(sandbox.state).toBe('archived');
    await sandbox.start();
    expect((await sandbox.fs.downloadFile('/tmp/archived.txt')).toString()).toBe('archived');
  });

  it('delete removes it: get is then not found, and list no longer has it', async () => {
    const sandbox = await create({ labels: { doomed: 'yes' } });
    await sandbox.delete();
    expect(await failure(daytona.get(sandbox.id))).toBeInstanceOf(DaytonaNotFoundError);
    expect(await listAll({ labels: { doomed: 'yes' } })).toEqual([]);
  });

  it('an ephemeral sandbox is deleted when it stops', async () => {
    const sandbox = await create({ ephemeral: true });
    expect(sandbox.autoDeleteInterval).toBe(0);
    await sandbox.stop();
    expect(await failure(daytona.get(sandbox.id))).toBeInstanceOf(DaytonaNotFoundError);
  });

  it('the interval setters and setTtl change what get reports; refreshActivity is accepted', async () => {
    const sandbox = await create();
    await sandbox.setAutostopInterval(0);
    await sandbox.setAutoArchiveInterval(5);
    await sandbox.setAutoDeleteInterval(10);
    await sandbox.setTtl(30);
    await sandbox.refreshActivity();
    const seen = await daytona.get(sandbox.id);
    expect(seen.autoStopInterval).toBe(0);
    expect(seen.autoArchiveInterval).toBe(5);
    expect(seen.autoDeleteInterval).toBe(10);
    const destroyAt = Date.parse(seen.autoDestroyAt!);
    expect(destroyAt).toBeGreaterThan(Date.now() + 25 * 60_000);
    await sandbox.setAutoPauseInterval(15);
    expect((await daytona.get(sandbox.id)).autoPauseInterval).toBe(15);
  });

  it('networkBlockAll at create blocks outbound traffic, and updateNetworkSettings records the allow lists', async () => {
    const sandbox = await create({ networkBlockAll: true });
    expect(sandbox.networkBlockAll).toBe(true);
    const probe = await sandbox.process.executeCommand(
      'python3 -c "import socket; socket.create_connection((\'10.255.255.1\', 80), timeout=2)" 2>/dev/null && echo reached || echo blocked',
    );
    expect(probe.result.trim()).toBe('blocked');
    const open = await create({ networkAllowList: '10.0.0.0/8,192.168.0.0/16' });
    expect(open.networkAllowList).toBe('10.0.0.0/8,192.168.0.0/16');
  });

  it('volumes: get with create, mount in two sandboxes, list, delete once unused', async () => {
    const volume = await daytona.volume.get('shared-data', true);
    expect(volume).toMatchObject({ name: 'shared-data', state: 'ready' });
    expect((await daytona.volume.get('shared-data')).id).toBe(volume.id);
    expect(await failure(daytona.volume.get('no-such-volume'))).toBeInstanceOf(DaytonaNotFoundError);
    const writer = await create({ volumes: [{ volumeId: volume.id, mountPath: '/data' }] });
    await writer.fs.uploadFile(Buffer.from('on the volume'), '/data/note.txt');
    const reader = await create({ volumes: [{ volumeId: volume.id, mountPath: '/mnt/shared' }] });
    expect((await reader.fs.downloadFile('/mnt/shared/note.txt')).toString()).toBe('on the volume');
    expect((await daytona.volume.list()).map((found) => found.name)).toContain('shared-data');
    expect(await failure(daytona.volume.delete(volume))).toBeInstanceOf(DaytonaConflictError);
    await writer.delete();
    await reader.delete();
    await daytona.volume.delete(volume);
    expect(await failure(daytona.volume.get('shared-data'))).toBeInstanceOf(DaytonaNotFoundError);
  });

  it('fork copies the filesystem into a new started sandbox', async () => {
    const source = await create({ labels: { forked: 'source' } });
    await source.fs.uploadFile(Buffer.from('inherited'), '/tmp/inherited.txt');
    const fork = await source.fork({ name: 'lifecycle-fork' });
    made.push(fork);
    expect(fork.id).not.toBe(source.id);
    expect(fork.state).toBe('started');
    expect((await fork.fs.downloadFile('/tmp/inherited.txt')).toString()).toBe('inherited');
  });

  it('state changes reach the SDK over the socket.io event stream, and polling mode works too', async () => {
    expect(emulator.eventClients).toBeGreaterThan(0);
    const polling = new Daytona({ apiUrl: emulator.url, apiKey: 'dtn_lifecycle', target: 'us', useDeprecatedPolling: true });
    const sandbox = await create(undefined, polling);
    const watcher = await daytona.get(sandbox.id);
    expect(watcher.state).toBe('started');
    await sandbox.stop();
    // The watcher did not call anything: only an event can have told it.
    for (let attempt = 0; attempt < 100 && watcher.state !== 'stopped'; attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(watcher.state).toBe('stopped');
    await sandbox.start();
    expect(sandbox.state).toBe('started');
    await polling[Symbol.asyncDispose]();
  });

  it('an unknown API route is a 501 naming the call', async () => {
    const response = await fetch(`${emulator.url}/sandbox/x/no-such-call`, {
      method: 'POST',
      headers: { authorization: 'Bearer dtn_lifecycle' },
    });
    expect(response.status).toBe(501);
    expect(((await response.json()) as { message: string }).message).toBe(
      'The Daytona emulator (API) does not implement POST /api/sandbox/x/no-such-call',
    );
  });
});
