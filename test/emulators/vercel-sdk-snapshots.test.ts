/**
 * The Vercel emulator's snapshots as a user of the real `@vercel/sandbox` SDK sees them:
 * `sandbox.snapshot()` (which stops the sandbox, as on Vercel), `Snapshot.get`, `Snapshot.list`
 * and `sandbox.listSnapshots()`, a sandbox created from a snapshot (`source: { type: 'snapshot' }`)
 * with the files of its source, expiration, `keepLastSnapshots`, `Snapshot.tree`, and delete (a
 * deleted snapshot cannot be started from: Vercel's 410 `snapshot_not_found`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Snapshot } from '@vercel/sandbox';
import { apiError, errorCode, needsImage, startTestEmulator, type TestEmulator } from './vercel/vercel-test-kit.js';

let kit: TestEmulator;

describe.skipIf(needsImage !== '')(`Vercel emulator: snapshots through @vercel/sandbox${needsImage}`, () => {
  beforeAll(async () => {
    kit = await startTestEmulator();
  });
  afterAll(async () => {
    await kit?.close();
  });

  it('takes a snapshot, which stops the sandbox, and starts a new sandbox from it with its files', async () => {
    const source = await kit.create({ name: 'snap-source' });
    await source.writeFiles([{ path: 'saved.txt', content: 'in the snapshot' }]);
    await source.runCommand('sh', ['-c', 'mkdir -p /opt/tool && echo built > /opt/tool/state']);
    const snapshot = await source.snapshot();
    expect(snapshot.snapshotId).toMatch(/^snap_/);
    expect(snapshot.status).toBe('created');
    expect(snapshot.sourceSessionId).toBe(source.currentSession().sessionId);
    expect(source.status).toBe('stopped');
    expect(snapshot.expiresAt!.getTime()).toBeGreaterThan(Date.now());
    const copy = await kit.create({ source: { type: 'snapshot', snapshotId: snapshot.snapshotId } });
    expect(copy.sourceSnapshotId).toBe(snapshot.snapshotId);
    expect(await (await copy.runCommand('cat', ['saved.txt', '/opt/tool/state'])).stdout()).toBe('in the snapshotbuilt\n');
  }, 120_000);

  it('gets a snapshot by id and lists them, all or one sandbox’s, page by page', async () => {
    const sandbox = await kit.create({ name: 'snap-lister' });
    const first = await sandbox.snapshot();
    await sandbox.runCommand('true');
    const second = await sandbox.snapshot({ expiration: 0 });
    expect(second.expiresAt).toBeUndefined();
    const got = await Snapshot.get({ ...kit.access, snapshotId: first.snapshotId });
    expect(got.snapshotId).toBe(first.snapshotId);
    expect(got.regions).toEqual(['iad1']);
    const own = await sandbox.listSnapshots();
    expect(own.snapshots.map((item) => item.id)).toEqual([second.snapshotId, first.snapshotId]);
    const paged = await Snapshot.list({ ...kit.access, name: 'snap-lister', limit: 1 });
    expect(paged.snapshots.length).toBe(1);
    expect((await paged.toArray()).map((item) => item.id)).toEqual([second.snapshotId, first.snapshotId]);
    const tree = await Snapshot.tree({ ...kit.access, snapshotId: second.snapshotId });
    expect(tree.snapshots.map((node) => node.snapshot.id)).toEqual([second.snapshotId, first.snapshotId]);
  }, 120_000);

  it('keeps only the last snapshots when keepLastSnapshots says so', async () => {
    const sandbox = await kit.create({ name: 'snap-keeper', keepLastSnapshots: { count: 1 } });
    const older = await sandbox.snapshot();
    await sandbox.runCommand('true');
    const newer = await sandbox.snapshot();
    const own = await sandbox.listSnapshots();
    expect(own.snapshots.map((item) => item.id)).toEqual([newer.snapshotId]);
    expect((await Snapshot.get({ ...kit.access, snapshotId: older.snapshotId })).status).toBe('deleted');
  }, 120_000);

  it('deletes a snapshot: it reads as deleted and cannot be started from', async () => {
    const sandbox = await kit.create();
    const snapshot = await sandbox.snapshot();
    await snapshot.delete();
    expect(snapshot.status).toBe('deleted');
    expect((await Snapshot.get({ ...kit.access, snapshotId: snapshot.snapshotId })).status).toBe('deleted');
    const error = await apiError(kit.create({ source: { type: 'snapshot', snapshotId: snapshot.snapshotId } }));
    expect(error.response.status).toBe(410);
    expect(errorCode(error)).toBe('snapshot_not_found');
    const missing = await apiError(Snapshot.get({ ...kit.access, snapshotId: 'snap_nothing' }));
    expect(missing.response.status).toBe(404);
  }, 120_000);
});
