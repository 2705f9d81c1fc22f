/**
 * Images and snapshots as a user of the real `@daytonaio/sdk` sees them: `create({ image })` with
 * a registry name and with the declarative `Image` builder (`runCommands`, `env`, `workdir`,
 * `Image.debianSlim()`), `sandbox.createSnapshot(name)` then `create({ snapshot })`,
 * `daytona.snapshot.create / get / list / delete`, a failing build's error, and the default
 * snapshot.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Daytona, DaytonaConflictError, DaytonaError, DaytonaNotFoundError, Image, type Sandbox } from '@daytonaio/sdk';
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
  emulator = await startDaytonaEmulator();
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: emulator.apiKey, target: 'us' });
});

afterAll(async () => {
  for (const sandbox of made) await sandbox.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
});

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

async function keep(sandbox: Promise<Sandbox>): Promise<Sandbox> {
  const created = await sandbox;
  made.push(created);
  return created;
}

describe.skipIf(!imageBuilt)(`Daytona emulator: images and snapshots through the SDK${needsImage}`, () => {
  it('the default snapshot is listed and general; it cannot be deleted', async () => {
    const snapshot = await daytona.snapshot.get('daytona-small');
    expect(snapshot).toMatchObject({ name: 'daytona-small', state: 'active', general: true });
    expect((await daytona.snapshot.list()).items.map((item) => item.name)).toContain('daytona-small');
    expect(await failure(daytona.snapshot.delete(snapshot))).toBeInstanceOf(DaytonaError);
  });

  it('create({ image: name }) runs on the default userland and records the image', async () => {
    const sandbox = await keep(daytona.create({ image: 'python:3.12-slim' }));
    expect(sandbox.state).toBe('started');
    expect(sandbox.buildInfo?.dockerfileContent).toContain('FROM python:3.12-slim');
    expect((await sandbox.process.executeCommand('python3 -c "print(1 + 1)"')).result).toBe('2\n');
  });

  it('a declarative Image is built: its RUN steps, ENV and WORKDIR hold in the sandbox', async () => {
    const image = Image.debianSlim('3.12')
      .runCommands('mkdir -p /opt/tool && echo built > /opt/tool/marker', 'echo second >> /opt/tool/marker')
      .env({ TOOL_HOME: '/opt/tool' })
      .workdir('/opt/tool');
    const logs: string[] = [];
    const sandbox = await keep(daytona.create({ image }, { timeout: 180, onSnapshotCreateLogs: (line) => logs.push(line) }));
    const result = await sandbox.process.executeCommand('cat marker; echo "$TOOL_HOME"; pwd');
    expect(result.result).toBe('built\nsecond\n/opt/tool\n/opt/tool\n');
    expect(await sandbox.getWorkDir()).toBe('/opt/tool');
  });

  it('a failing build step fails the create naming the step', async () => {
    const error = await failure(daytona.create({ image: Image.base('debian:bookworm').runCommands('exit 9') }, { timeout: 120 }));
    expect(error).toBeInstanceOf(DaytonaError);
    expect(error.message).toContain('RUN exit 9');
  });

  it('a COPY needs its context in object storage, which the emulator refuses with a 501 naming the call', async () => {
    const error = await failure(daytona.create({ image: Image.base('debian:bookworm').dockerfileCommands(['COPY a b']) }));
    expect((error as DaytonaError).statusCode).toBe(501);
    expect(error.message).toBe('The Daytona emulator (API) does not implement GET /api/object-storage/push-access');
  });

  it('createSnapshot captures a sandbox; create({ snapshot }) starts from it; delete removes it', async () => {
    const source = await keep(daytona.create());
    await source.fs.uploadFile(Buffer.from('in the snapshot'), '/home/daytona/state.txt');
    await source.createSnapshot('captured-state');
    expect(source.state).toBe('started');
    const snapshot = await daytona.snapshot.get('captured-state');
    expect(snapshot).toMatchObject({ name: 'captured-state', state: 'active', sourceSandboxId: source.id });
    expect(await failure(source.createSnapshot('captured-state'))).toBeInstanceOf(DaytonaConflictError);
    const copy = await keep(daytona.create({ snapshot: 'captured-state' }));
    expect(copy.snapshot).toBe('captured-state');
    expect((await copy.fs.downloadFile('/home/daytona/state.txt')).toString()).toBe('in the snapshot');
    const listed = await daytona.snapshot.list({ sourceSandboxId: source.id } as never);
    expect(listed.items.map((item) => item.name)).toEqual(['captured-state']);
    await daytona.snapshot.delete(snapshot);
    expect(await failure(daytona.snapshot.get('captured-state'))).toBeInstanceOf(DaytonaNotFoundError);
    expect(await failure(daytona.create({ snapshot: 'captured-state' }))).toBeInstanceOf(DaytonaNotFoundError);
  });

  it('snapshot.create builds a named snapshot from an Image, usable by name; activate answers it', async () => {
    const logs: string[] = [];
    const snapshot = await daytona.snapshot.create(
      { name: 'built-snapshot', image: Image.base('debian:bookworm').runCommands('echo from-snapshot > /etc/snapshot-marker') },
      { onLogs: (line) => logs.push(line) },
    );
    expect(snapshot.state).toBe('active');
    expect(logs.some((line) => line.includes('built-snapshot'))).toBe(true);
    const sandbox = await keep(daytona.create({ snapshot: 'built-snapshot' }));
    expect((await sandbox.process.executeCommand('cat /etc/snapshot-marker')).result).toBe('from-snapshot\n');
    expect((await daytona.snapshot.activate(snapshot)).state).toBe('active');
    const named = await daytona.snapshot.create({ name: 'by-image-name', image: 'python:3.12' });
    expect(named).toMatchObject({ state: 'active', imageName: 'python:3.12' });
  });
});
