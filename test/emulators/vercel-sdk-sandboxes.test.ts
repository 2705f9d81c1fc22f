/**
 * The Vercel emulator's sandboxes and sessions as a user of the real `@vercel/sandbox` SDK sees
 * them, through the SDK's own calls as Vercel's docs show them: create from the default image,
 * an image name, a runtime, a git repository and a tarball; get and getOrCreate by name; list
 * with pagination, a name prefix and a tag filter; update; stop, resume (persistent and not),
 * extendTimeout and the session timeout; fork; delete; sessions; and the refusals (credentials,
 * names, limits, unknown routes), each with the status and error code Vercel gives.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Drive, Sandbox } from '@vercel/sandbox';
import { apiError, errorCode, needsImage, startTestEmulator, type TestEmulator } from './vercel/vercel-test-kit.js';

let kit: TestEmulator;
let files: Server;
let served: string;

/** A host directory served over plain HTTP (git's dumb protocol and a tarball) as `source.test`. */
async function serveDirectory(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(dir)) return void res.writeHead(403).end();
    readFile(path).then(
      (body) => res.writeHead(200).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return server;
}

/** A bare git repository with two commits (`v1` tagged) and a tarball of one file, in `dir`. */
function makeSources(dir: string): void {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: join(dir, 'work'), stdio: 'pipe' });
  execFileSync('mkdir', ['-p', join(dir, 'work'), join(dir, 'tar')]);
  git('init', '-q', '-b', 'main');
  execFileSync('sh', ['-c', 'echo first > README.md'], { cwd: join(dir, 'work') });
  git('add', '.');
  git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'first');
  git('tag', 'v1');
  execFileSync('sh', ['-c', 'echo second > README.md'], { cwd: join(dir, 'work') });
  git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-am', 'second');
  execFileSync('git', ['clone', '-q', '--bare', join(dir, 'work'), join(dir, 'repo.git')]);
  execFileSync('git', ['update-server-info'], { cwd: join(dir, 'repo.git') });
  execFileSync('sh', ['-c', 'echo from-tarball > tar/inside.txt && tar -czf app.tar.gz -C tar inside.txt'], { cwd: dir });
}

describe.skipIf(needsImage !== '')(`Vercel emulator: sandboxes and sessions through @vercel/sandbox${needsImage}`, () => {
  beforeAll(async () => {
    served = await mkdtemp(join(tmpdir(), 'vercel-sources-'));
    makeSources(served);
    files = await serveDirectory(served);
    const port = (files.address() as AddressInfo).port;
    kit = await startTestEmulator({ testInternet: { hosts: { 'source.test': { address: '203.0.113.40', ports: { 80: port } } } } });
  });
  afterAll(async () => {
    await kit?.close();
    files?.close();
    if (served) await rm(served, { recursive: true, force: true });
  });

  it('creates from the default image: running, named, with the defaults Vercel reports', async () => {
    const sandbox = await kit.create();
    expect(sandbox.status).toBe('running');
    expect(sandbox.name).toMatch(/^sandbox-/);
    expect(sandbox.persistent).toBe(true);
    expect(sandbox.region).toBe('iad1');
    expect(sandbox.vcpus).toBe(2);
    expect(sandbox.memory).toBe(4096);
    expect(sandbox.timeout).toBe(300_000);
    expect(sandbox.cwd).toBe('/vercel/sandbox');
    expect(sandbox.image).toMatch(/^vercel\/sandbox\/universal@sha256:[0-9a-f]{64}$/);
    expect(sandbox.runtime).toBeUndefined();
    expect(sandbox.currentSession().sessionId).toMatch(/^sbx_/);
    expect(sandbox.expiresAt!.getTime()).toBeGreaterThan(Date.now());
  });

  it('creates from a runtime (the v2 endpoint) and from a managed image name', async () => {
    const node = await kit.create({ runtime: 'node22' });
    expect(node.runtime).toBe('node22');
    expect(node.image).toBeUndefined();
    expect((await node.runCommand('node', ['--version'])).exitCode).toBe(0);
    const python = await kit.create({ image: 'vercel/sandbox/universal:latest' });
    expect(python.image).toMatch(/^vercel\/sandbox\/universal@sha256:/);
    expect(await (await python.runCommand('python3', ['-c', 'print("ok")'])).stdout()).toBe('ok\n');
  });

  it('refuses an image it does not have (404) and an unknown runtime (400)', async () => {
    const image = await apiError(kit.create({ image: 'my-team/my-repo:v1' }));
    expect(image.response.status).toBe(404);
    expect(errorCode(image)).toBe('image_not_found');
    const runtime = await apiError(kit.create({ runtime: 'ruby3' }));
    expect(runtime.response.status).toBe(400);
    expect(runtime.message).toContain('runtime');
  });

  it('clones a git source into /vercel/sandbox, at a revision when given', async () => {
    const head = await kit.create({ source: { type: 'git', url: 'http://source.test/repo.git' } });
    expect(await (await head.runCommand('cat', ['README.md'])).stdout()).toBe('second\n');
    const tagged = await kit.create({ source: { type: 'git', url: 'http://source.test/repo.git', revision: 'v1' } });
    expect(await (await tagged.runCommand('cat', ['README.md'])).stdout()).toBe('first\n');
  }, 120_000);

  it('unpacks a tarball source into /vercel/sandbox, and refuses one it cannot fetch', async () => {
    const sandbox = await kit.create({ source: { type: 'tarball', url: 'http://source.test/app.tar.gz' } });
    expect(await (await sandbox.runCommand('cat', ['inside.txt'])).stdout()).toBe('from-tarball\n');
    const error = await apiError(kit.create({ source: { type: 'tarball', url: 'http://source.test/missing.tar.gz' } }));
    expect(error.response.status).toBe(400);
    expect(errorCode(error)).toBe('source_failed');
  }, 120_000);

  it('gets a sandbox by name, and getOrCreate creates once then gets', async () => {
    const sandbox = await kit.create({ name: 'named-one', tags: { purpose: 'get' } });
    const again = await Sandbox.get({ ...kit.access, name: 'named-one' });
    expect(again.name).toBe('named-one');
    expect(again.tags).toEqual({ purpose: 'get' });
    expect(again.currentSession().sessionId).toBe(sandbox.currentSession().sessionId);
    let created = 0;
    const first = await Sandbox.getOrCreate({ ...kit.access, name: 'get-or-create', onCreate: async () => void created++ });
    const second = await Sandbox.getOrCreate({ ...kit.access, name: 'get-or-create', onCreate: async () => void created++ });
    expect(created).toBe(1);
    expect(second.currentSession().sessionId).toBe(first.currentSession().sessionId);
    await first.delete();
    const missing = await apiError(Sandbox.get({ ...kit.access, name: 'no-such-sandbox' }));
    expect(missing.response.status).toBe(404);
    expect(missing.sandboxName).toBe('no-such-sandbox');
  });

  it('lists sandboxes page by page, by name prefix and by one tag', async () => {
    for (const [index, team] of ['red', 'blue', 'red'].entries()) await kit.create({ name: `list-${index}`, tags: { team } });
    const firstPage = await Sandbox.list({ ...kit.access, namePrefix: 'list-', limit: 2 });
    expect(firstPage.sandboxes.map((sandbox) => sandbox.name)).toEqual(['list-2', 'list-1']);
    expect(firstPage.pagination.next).not.toBeNull();
    const all = await firstPage.toArray();
    expect(all.map((sandbox) => sandbox.name)).toEqual(['list-2', 'list-1', 'list-0']);
    const red = await Sandbox.list({ ...kit.access, namePrefix: 'list-', tags: { team: 'red' } });
    expect(red.sandboxes.map((sandbox) => sandbox.name)).toEqual(['list-2', 'list-0']);
    const ascending = await Sandbox.list({ ...kit.access, namePrefix: 'list-', sortOrder: 'asc' });
    expect(ascending.sandboxes.map((sandbox) => sandbox.name)).toEqual(['list-0', 'list-1', 'list-2']);
  });

  it('updates tags, timeout, resources and persistence', async () => {
    const sandbox = await kit.create({ tags: { stage: 'one' } });
    await sandbox.update({ tags: { stage: 'two', extra: 'yes' }, timeout: 600_000, resources: { vcpus: 4 }, persistent: false });
    expect(sandbox.tags).toEqual({ stage: 'two', extra: 'yes' });
    expect(sandbox.timeout).toBe(600_000);
    expect(sandbox.vcpus).toBe(4);
    expect(sandbox.memory).toBe(8192);
    expect(sandbox.persistent).toBe(false);
    // A raised timeout extends the running session too.
    expect(sandbox.currentSession().timeout).toBe(600_000);
    const listed = await Sandbox.list({ ...kit.access, tags: { stage: 'two' } });
    expect(listed.sandboxes.map((item) => item.name)).toEqual([sandbox.name]);
  });

  it('extends the session timeout, refusing to go past 24 hours', async () => {
    const sandbox = await kit.create({ timeout: 60_000 });
    const before = sandbox.expiresAt!.getTime();
    await sandbox.extendTimeout(120_000);
    expect(sandbox.currentSession().timeout).toBe(180_000);
    expect(sandbox.expiresAt!.getTime()).toBe(before + 120_000);
    const error = await apiError(sandbox.extendTimeout(24 * 60 * 60 * 1000));
    expect(error.response.status).toBe(400);
  });

  it('stops a session when its timeout passes', async () => {
    const sandbox = await kit.create({ timeout: 1000, persistent: false });
    for (let attempt = 0; attempt < 100; attempt++) {
      if ((await Sandbox.get({ ...kit.access, name: sandbox.name })).status === 'stopped') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await Sandbox.get({ ...kit.access, name: sandbox.name })).status).toBe('stopped');
  });

  it('stops a persistent sandbox with a snapshot and resumes it with its files on the next call', async () => {
    const sandbox = await kit.create({ name: 'persistent-one' });
    await sandbox.writeFiles([{ path: 'kept.txt', content: 'still here' }]);
    const firstSession = sandbox.currentSession().sessionId;
    const stopped = await sandbox.stop();
    expect(stopped.status).toBe('stopped');
    expect(stopped.snapshot?.id).toMatch(/^snap_/);
    expect(sandbox.currentSnapshotId).toBe(stopped.snapshot?.id);
    const later = await Sandbox.get({ ...kit.access, name: 'persistent-one' });
    expect(later.status).toBe('stopped');
    let resumedHook = 0;
    const resumed = await Sandbox.get({ ...kit.access, name: 'persistent-one', resume: true, onResume: async () => void resumedHook++ });
    expect(resumedHook).toBe(1);
    expect(resumed.status).toBe('running');
    expect(resumed.currentSession().sessionId).not.toBe(firstSession);
    expect(resumed.sourceSnapshotId).toBe(stopped.snapshot?.id);
    expect((await resumed.readFileToBuffer({ path: 'kept.txt' }))?.toString()).toBe('still here');
    // The stale handle resumes by itself on its next call (the SDK's answer to the 410).
    expect(await (await sandbox.runCommand('cat', ['kept.txt'])).stdout()).toBe('still here');
    const sessions = await resumed.listSessions();
    expect(sessions.sessions.length).toBe(2);
  }, 120_000);

  it('starts a non-persistent sandbox clean after a stop', async () => {
    const sandbox = await kit.create({ persistent: false });
    await sandbox.writeFiles([{ path: 'gone.txt', content: 'x' }]);
    const stopped = await sandbox.stop();
    expect(stopped.snapshot).toBeUndefined();
    expect(await sandbox.readFile({ path: 'gone.txt' })).toBeNull();
  }, 120_000);

  it('forks a sandbox from its current snapshot, copying its config', async () => {
    const source = await kit.create({ name: 'fork-source', tags: { from: 'source' }, env: { GREETING: 'hi' } });
    await source.writeFiles([{ path: 'state.txt', content: 'forked state' }]);
    await source.stop();
    const fork = await Sandbox.fork({ ...kit.access, sourceSandbox: 'fork-source', name: 'fork-copy' });
    expect(fork.name).toBe('fork-copy');
    expect(fork.tags).toEqual({ from: 'source' });
    expect(await (await fork.runCommand('cat', ['state.txt'])).stdout()).toBe('forked state');
    expect(await (await fork.runCommand('sh', ['-c', 'echo $GREETING'])).stdout()).toBe('hi\n');
    await fork.delete();
  }, 120_000);

  it('deletes a sandbox: it is gone from get and list', async () => {
    const sandbox = await Sandbox.create({ ...kit.access, name: 'to-delete' });
    await sandbox.delete();
    expect((await apiError(Sandbox.get({ ...kit.access, name: 'to-delete' }))).response.status).toBe(404);
    expect((await Sandbox.list({ ...kit.access, namePrefix: 'to-delete' })).sandboxes).toEqual([]);
  });

  it('does not resume a sandbox for a call that races its delete', async () => {
    const sandbox = await Sandbox.create({ ...kit.access, name: 'racing-delete' });
    const part = Buffer.alloc(1024 * 1024, 7);
    const writes = Promise.allSettled(
      Array.from({ length: 4 }, (_, index) => sandbox.writeFiles([{ path: `/tmp/part${index}`, content: part }])),
    );
    await sandbox.delete();
    for (const outcome of await writes) {
      if (outcome.status === 'rejected') expect((outcome.reason as { response?: Response }).response?.status).toBe(404);
    }
    expect((await apiError(Sandbox.get({ ...kit.access, name: 'racing-delete', resume: true }))).response.status).toBe(404);
    expect(await apiError(sandbox.runCommand('true')).then((error) => error.response.status)).toBe(404);
  });

  it('refuses a taken name (409), more than 5 tags, an unoffered vCPU count and a bad name (400)', async () => {
    await kit.create({ name: 'taken-name' });
    const taken = await apiError(kit.create({ name: 'taken-name' }));
    expect(taken.response.status).toBe(409);
    const tags = await apiError(kit.create({ tags: { a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' } }));
    expect(tags.response.status).toBe(400);
    expect(tags.message).toContain('at most 5 tags');
    const vcpus = await apiError(kit.create({ resources: { vcpus: 3 } }));
    expect(vcpus.response.status).toBe(400);
    expect(vcpus.message).toContain('resources.vcpus');
    const name = await apiError(kit.create({ name: 'bad name!' }));
    expect(name.response.status).toBe(400);
  });

  it('refuses a wrong token (401), another team (403) and another project (404)', async () => {
    const token = await apiError(Sandbox.list({ ...kit.access, token: 'wrong' }));
    expect(token.response.status).toBe(401);
    const team = await apiError(Sandbox.list({ ...kit.access, teamId: 'team_other' }));
    expect(team.response.status).toBe(403);
    const project = await apiError(Sandbox.create({ ...kit.access, projectId: 'prj_other' }));
    expect(project.response.status).toBe(404);
  });

  it('fails a call it does not emulate loudly, naming it', async () => {
    const error = await apiError(Drive.list({ ...kit.access }));
    expect(error.response.status).toBe(501);
    expect(error.message).toContain('/v2/sandboxes/drives');
    const sandbox = await kit.create();
    const interactive = await apiError(sandbox.openInteractive());
    expect(interactive.message).toContain('openInteractive');
  }, 60_000);
});
