/**
 * The Fly emulator's Machines API, exercised with plain `fetch` as Fly's docs show the calls:
 * auth, apps, the machine lifecycle (create, wait, stop, start, suspend, update, signal, the init
 * process's exit, delete), list filters, metadata and leases. Statuses and bodies are asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlyEmulator, type FlyEmulator } from './fly/index.js';
import { flyTestClient, type FlyTestClient } from './fly/fly-test-client.js';

let emulator: FlyEmulator;
let fly: FlyTestClient;
const image = 'registry-1.docker.io/library/ubuntu:22.04';

beforeAll(async () => {
  emulator = await startFlyEmulator({ token: 'test-token' });
  fly = flyTestClient(emulator.url, emulator.token);
});
afterAll(async () => {
  await emulator?.close();
});

describe('auth and routes', () => {
  it('answers 401 {"error":"unauthorized"} without a token or with a wrong one', async () => {
    const none = await fetch(`${emulator.url}/v1/apps?org_slug=personal`);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: 'unauthorized' });
    const wrong = await fetch(`${emulator.url}/v1/apps?org_slug=personal`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ error: 'unauthorized' });
  });

  it('answers an unknown route 404 with a body naming the call', async () => {
    const app = await fly.app();
    const answer = await fly.call('GET', `/v1/apps/${app}/volumes/vol_x/snapshots`);
    expect(answer.status).toBe(404);
    expect(answer.headers.get('fly-emulator-unimplemented')).toBe('1');
    expect(answer.body.error).toBe(`the Fly emulator does not implement GET /v1/apps/${app}/volumes/vol_x/snapshots`);
  });
});

describe('apps', () => {
  it('creates (201), shows, lists by org, refuses a taken name (422) and deletes (202)', async () => {
    const name = `apps-${process.pid}`;
    const created = await fly.call('POST', '/v1/apps', { app_name: name, org_slug: 'my-org' });
    expect(created.status).toBe(201);
    expect(created.body).toBeUndefined();
    const again = await fly.call('POST', '/v1/apps', { app_name: name, org_slug: 'my-org' });
    expect(again.status).toBe(422);
    expect(again.body).toEqual({ error: 'Name has already been taken', status: 'name_taken' });
    const shown = await fly.call('GET', `/v1/apps/${name}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ name, organization: { slug: 'my-org' } });
    const listed = await fly.call('GET', '/v1/apps?org_slug=my-org');
    expect(listed.status).toBe(200);
    expect(listed.body.apps.map((app: { name: string }) => app.name)).toEqual([name]);
    expect(listed.body).toMatchObject({ total_apps: 1, apps: [{ name, machine_count: 0 }] });
    const deleted = await fly.call('DELETE', `/v1/apps/${name}`);
    expect(deleted.status).toBe(202);
    const gone = await fly.call('GET', `/v1/apps/${name}`);
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ error: 'app not found' });
  });

  it('refuses a malformed app name (400) and machines of a missing app (404)', async () => {
    const bad = await fly.call('POST', '/v1/apps', { app_name: 'Not_Valid', org_slug: 'personal' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^invalid_argument: app_name/);
    const missing = await fly.call('GET', '/v1/apps/no-such-app/machines');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'app not found' });
  });
});

describe('machines', () => {
  it('creates a machine in state created that then starts, with Fly-shaped ids', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, {
      name: 'first',
      config: { image, guest: { cpus: 1, memory_mb: 256 }, env: { GREETING: 'hi' }, metadata: { owner: 'test' } },
    });
    expect(machine.state).toBe('created');
    expect(machine.id).toMatch(/^[0-9a-f]{14}$/);
    expect(machine.instance_id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(machine).toMatchObject({ name: 'first', region: 'lcl', config: { image, env: { GREETING: 'hi' } } });
    expect(machine.image_ref).toMatchObject({ registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: '22.04' });
    expect(machine.events[0]).toMatchObject({ type: 'launch', status: 'created', source: 'user' });
    const waited = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}/wait?state=started&timeout=30`);
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ ok: true });
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}`);
    expect(shown.body.state).toBe('started');
    const exec = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, {
      command: ['sh', '-c', 'echo "$GREETING $FLY_APP_NAME $FLY_MACHINE_ID"'],
    });
    expect(exec.body.stdout).toBe(`hi ${app} ${machine.id}\n`);
  });

  it('refuses a second machine of the same name (409) and a config without image (400)', async () => {
    const app = await fly.app();
    await fly.machine(app, { name: 'twin', config: { image }, skip_launch: true });
    const twin = await fly.call('POST', `/v1/apps/${app}/machines`, { name: 'twin', config: { image } });
    expect(twin.status).toBe(409);
    expect(twin.body.error).toContain('twin');
    const noImage = await fly.call('POST', `/v1/apps/${app}/machines`, { config: { env: {} } });
    expect(noImage.status).toBe(400);
    expect(noImage.body.error).toMatch(/^invalid_argument: config\.image/);
    const unsupported = await fly.call('POST', `/v1/apps/${app}/machines`, { config: { image, files: [] } });
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.error).toBe('invalid_argument: config.files is not implemented by the Fly emulator');
  });

  it('keeps a skip_launch machine created; start answers previous_state and boots it', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image }, skip_launch: true });
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}`);
    expect(shown.body.state).toBe('created');
    const started = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/start`);
    expect(started.status).toBe(200);
    expect(started.body).toEqual({ previous_state: 'created', migrated: false, new_host: '' });
    await fly.waitFor(app, machine.id, 'started');
  });

  it('stops (wait stopped) and starts a machine from a clean filesystem', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image } });
    await fly.waitFor(app, machine.id, 'started');
    await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, { command: ['sh', '-c', 'echo x > /tmp/marker'] });
    const stopped = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/stop`, { signal: 'SIGTERM', timeout: '5s' });
    expect(stopped.status).toBe(200);
    expect(stopped.body).toEqual({ ok: true });
    await fly.waitFor(app, machine.id, 'stopped', `&instance_id=${machine.instance_id}`);
    const execStopped = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, { command: ['true'] });
    expect(execStopped.status).toBe(412);
    expect(execStopped.body.error).toMatch(/^failed_precondition: .*not started/);
    const started = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/start`);
    expect(started.body.previous_state).toBe('stopped');
    await fly.waitFor(app, machine.id, 'started');
    const marker = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, { command: ['test', '-e', '/tmp/marker'] });
    expect(marker.body.exit_code).toBe(1);
  });

  it('goes stopped when its init process exits, and is destroyed with auto_destroy', async () => {
    const app = await fly.app();
    const stays = await fly.machine(app, { config: { image, init: { cmd: ['sh', '-c', 'exit 3'] }, restart: { policy: 'no' } } });
    await fly.waitFor(app, stays.id, 'stopped');
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${stays.id}`);
    expect(shown.body.state).toBe('stopped');
    const exit = shown.body.events.find((event: { type: string }) => event.type === 'exit');
    expect(exit).toMatchObject({ status: 'stopped', source: 'flyd', request: { exit_event: { exit_code: 3, requested_stop: false } } });

    const goes = await fly.machine(app, { config: { image, init: { exec: ['sleep', '0.2'] }, auto_destroy: true } });
    await fly.waitFor(app, goes.id, 'destroyed');
    const destroyed = await fly.call('GET', `/v1/apps/${app}/machines/${goes.id}`);
    expect(destroyed.status).toBe(200);
    expect(destroyed.body.state).toBe('destroyed');
    const listed = await fly.call('GET', `/v1/apps/${app}/machines`);
    expect(listed.body.map((m: { id: string }) => m.id)).toEqual([stays.id]);
    const withDeleted = await fly.call('GET', `/v1/apps/${app}/machines?include_deleted=true`);
    expect(withDeleted.body.map((m: { id: string }) => m.id)).toEqual([stays.id, goes.id]);
    const exec = await fly.call('POST', `/v1/apps/${app}/machines/${goes.id}/exec`, { command: ['true'] });
    expect(exec.status).toBe(404);
    expect(exec.body).toEqual({ error: 'machine not found' });
  });

  it('restarts an init that fails under on-failure, then stops after max_retries', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, {
      config: { image, init: { cmd: ['sh', '-c', 'exit 1'] }, restart: { policy: 'on-failure', max_retries: 1 } },
    });
    await fly.waitFor(app, machine.id, 'stopped');
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}`);
    const exits = shown.body.events.filter((event: { type: string }) => event.type === 'exit');
    expect(exits.map((event: any) => event.request.exit_event.restarting)).toEqual([false, true]);
  });

  it('refuses to delete a started machine without force (412), deletes with force', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image } });
    await fly.waitFor(app, machine.id, 'started');
    const refused = await fly.call('DELETE', `/v1/apps/${app}/machines/${machine.id}`);
    expect(refused.status).toBe(412);
    expect(refused.body.error).toMatch(/^failed_precondition: unable to destroy machine, not currently stopped or suspended/);
    const forced = await fly.call('DELETE', `/v1/apps/${app}/machines/${machine.id}?force=true`);
    expect(forced.status).toBe(200);
    expect(forced.body).toEqual({ ok: true });
    await fly.waitFor(app, machine.id, 'destroyed');
    const again = await fly.call('DELETE', `/v1/apps/${app}/machines/${machine.id}?force=true`);
    expect(again.status).toBe(404);
  });

  it('suspends (processes keep their memory) and start resumes', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image } });
    await fly.waitFor(app, machine.id, 'started');
    const path = `/v1/apps/${app}/machines/${machine.id}`;
    await fly.call('POST', `${path}/exec`, { command: ['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $! > /tmp/sleeper'] });
    const suspended = await fly.call('POST', `${path}/suspend`);
    expect(suspended.status).toBe(200);
    await fly.waitFor(app, machine.id, 'suspended');
    const exec = await fly.call('POST', `${path}/exec`, { command: ['true'] });
    expect(exec.status).toBe(412);
    const started = await fly.call('POST', `${path}/start`);
    expect(started.body.previous_state).toBe('suspended');
    await fly.waitFor(app, machine.id, 'started');
    const alive = await fly.call('POST', `${path}/exec`, { command: ['sh', '-c', 'kill -0 "$(cat /tmp/sleeper)" && echo alive'] });
    expect(alive.body).toMatchObject({ exit_code: 0, stdout: 'alive\n' });
  });

  it('restarts a started machine on a fresh run of the same version', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image } });
    await fly.waitFor(app, machine.id, 'started');
    const path = `/v1/apps/${app}/machines/${machine.id}`;
    await fly.call('POST', `${path}/exec`, { command: ['touch', '/tmp/before-restart'] });
    const restarted = await fly.call('POST', `${path}/restart`);
    expect(restarted.status).toBe(200);
    await fly.waitFor(app, machine.id, 'started');
    const shown = await fly.call('GET', path);
    expect(shown.body.instance_id).toBe(machine.instance_id);
    const marker = await fly.call('POST', `${path}/exec`, { command: ['test', '-e', '/tmp/before-restart'] });
    expect(marker.body.exit_code).toBe(1);
    const stoppedFirst = await fly.machine(app, { config: { image }, skip_launch: true });
    expect((await fly.call('POST', `/v1/apps/${app}/machines/${stoppedFirst.id}/restart`)).status).toBe(412);
  });

  it('kills an init that ignores the stop signal once the stop timeout passes', async () => {
    const app = await fly.app();
    const stubborn = ['sh', '-c', 'trap "" INT TERM; while :; do sleep 0.1; done'];
    const machine = await fly.machine(app, { config: { image, init: { exec: stubborn } } });
    await fly.waitFor(app, machine.id, 'started');
    const stopped = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/stop`, { signal: 'SIGTERM', timeout: '1s' });
    expect(stopped.status).toBe(200);
    await fly.waitFor(app, machine.id, 'stopped');
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}`);
    expect(shown.body.events[0]).toMatchObject({ type: 'stop', status: 'stopped', source: 'user' });
  });

  it('updates the config: a new instance_id, the machine reboots on it', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { name: 'upd', config: { image, env: { V: '1' } } });
    await fly.waitFor(app, machine.id, 'started');
    const updated = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}`, { config: { image, env: { V: '2' } } });
    expect(updated.status).toBe(200);
    expect(updated.body.instance_id).not.toBe(machine.instance_id);
    expect(updated.body.config.env).toEqual({ V: '2' });
    // The old version counts as stopped: it was replaced.
    await fly.waitFor(app, machine.id, 'stopped', `&instance_id=${machine.instance_id}`);
    await fly.waitFor(app, machine.id, 'stopped', `&version=${machine.instance_id}`);
    await fly.waitFor(app, machine.id, 'started');
    const exec = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, { command: ['sh', '-c', 'echo $V'] });
    expect(exec.body.stdout).toBe('2\n');
    const renamed = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}`, { name: 'other', config: { image } });
    expect(renamed.status).toBe(400);
    expect(renamed.body.error).toBe('invalid_argument: name cannot be changed');
  });

  it('signals the init process: SIGTERM ends it and the machine stops; flyctl kill sends 9', async () => {
    const app = await fly.app();
    const first = await fly.machine(app, { config: { image, restart: { policy: 'no' } } });
    await fly.waitFor(app, first.id, 'started');
    const signalled = await fly.call('POST', `/v1/apps/${app}/machines/${first.id}/signal`, { signal: 'SIGTERM' });
    expect(signalled.status).toBe(200);
    await fly.waitFor(app, first.id, 'stopped');
    const bad = await fly.call('POST', `/v1/apps/${app}/machines/${first.id}/signal`, { signal: 'SIGNOPE' });
    expect(bad.status).toBe(400);
    const second = await fly.machine(app, { config: { image, restart: { policy: 'no' } } });
    await fly.waitFor(app, second.id, 'started');
    expect((await fly.call('POST', `/v1/apps/${app}/machines/${second.id}/signal`, { signal: 9 })).status).toBe(200);
    await fly.waitFor(app, second.id, 'stopped');
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${second.id}`);
    expect(shown.body.events.find((event: { type: string }) => event.type === 'exit').request.exit_event).toMatchObject({
      exit_code: 137,
      signal: 9,
    });
  });
});

describe('wait', () => {
  it('answers 408 when the state does not come within the timeout, 400 past 60 s or for an unknown state', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image } });
    await fly.waitFor(app, machine.id, 'started');
    const path = `/v1/apps/${app}/machines/${machine.id}/wait`;
    const late = await fly.call('GET', `${path}?state=stopped&timeout=1`);
    expect(late.status).toBe(408);
    expect(late.body.error).toMatch(/^deadline_exceeded: /);
    const long = await fly.call('GET', `${path}?state=stopped&timeout=61`);
    expect(long.status).toBe(400);
    expect(long.body.error).toMatch(/^invalid_argument: timeout must be between 1s and 1m0s/);
    const unknown = await fly.call('GET', `${path}?state=settled`);
    expect(unknown.status).toBe(400);
    const either = await fly.call('GET', `${path}?state=stopped&state=started&timeout=1`);
    expect(either.status).toBe(200);
  });

  it('answers 412 at once for a state a destroyed machine cannot reach', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image }, skip_launch: true });
    await fly.call('DELETE', `/v1/apps/${app}/machines/${machine.id}`);
    await fly.waitFor(app, machine.id, 'destroyed');
    const never = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}/wait?state=started&timeout=30`);
    expect(never.status).toBe(412);
    expect(never.body.error).toMatch(/destroyed/);
  });
});

describe('list filters and metadata', () => {
  it('filters by metadata.<key>=<value>; metadata set (204), get and delete (204)', async () => {
    const app = await fly.app();
    const a = await fly.machine(app, { config: { image, metadata: { role: 'a', team: 'x' } }, skip_launch: true });
    const b = await fly.machine(app, { config: { image, metadata: { role: 'b', team: 'x' } }, skip_launch: true });
    const byRole = await fly.call('GET', `/v1/apps/${app}/machines?metadata.role=a`);
    expect(byRole.body.map((m: { id: string }) => m.id)).toEqual([a.id]);
    const byTeam = await fly.call('GET', `/v1/apps/${app}/machines?metadata.team=x&metadata.role=b`);
    expect(byTeam.body.map((m: { id: string }) => m.id)).toEqual([b.id]);
    const set = await fly.call('POST', `/v1/apps/${app}/machines/${a.id}/metadata/color`, { value: 'blue' });
    expect(set.status).toBe(204);
    expect(set.body).toBeUndefined();
    const got = await fly.call('GET', `/v1/apps/${app}/machines/${a.id}/metadata`);
    expect(got.body).toEqual({ role: 'a', team: 'x', color: 'blue' });
    expect((await fly.call('GET', `/v1/apps/${app}/machines?metadata.color=blue`)).body.map((m: { id: string }) => m.id)).toEqual([a.id]);
    const removed = await fly.call('DELETE', `/v1/apps/${app}/machines/${a.id}/metadata/color`);
    expect(removed.status).toBe(204);
    expect((await fly.call('GET', `/v1/apps/${app}/machines/${a.id}/metadata`)).body).toEqual({ role: 'a', team: 'x' });
    const badValue = await fly.call('POST', `/v1/apps/${app}/machines/${a.id}/metadata/color`, { value: 3 });
    expect(badValue.status).toBe(400);
  });
});

describe('leases', () => {
  it('acquires (201), refuses a second holder (409), guards mutations by nonce, releases', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image }, skip_launch: true });
    const path = `/v1/apps/${app}/machines/${machine.id}`;
    const acquired = await fly.call('POST', `${path}/lease`, { ttl: 60, description: 'test' });
    expect(acquired.status).toBe(201);
    expect(acquired.body).toMatchObject({ status: 'success', data: { owner: 'emulator@fly.localhost', description: 'test' } });
    const nonce: string = acquired.body.data.nonce;
    expect(nonce).toMatch(/^[0-9a-f]{12}$/);
    expect(acquired.body.data.expires_at).toBeGreaterThan(Date.now() / 1000 + 50);
    const second = await fly.call('POST', `${path}/lease`, { ttl: 60 });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ status: 'error', code: 'invalid' });
    expect(second.body.message).toContain('lease currently held by emulator@fly.localhost');
    const shown = await fly.call('GET', `${path}/lease`);
    expect(shown.body.data.nonce).toBe(nonce);
    const blocked = await fly.call('POST', `${path}/metadata/k`, { value: 'v' });
    expect(blocked.status).toBe(409);
    expect(blocked.body.error).toContain(`machine ID ${machine.id} lease currently held by`);
    const startBlocked = await fly.call('POST', `${path}/start`);
    expect(startBlocked.status).toBe(409);
    const allowed = await fly.call('POST', `${path}/metadata/k`, { value: 'v' }, { 'fly-machine-lease-nonce': nonce });
    expect(allowed.status).toBe(204);
    const refreshed = await fly.call('POST', `${path}/lease`, { ttl: 120 }, { 'fly-machine-lease-nonce': nonce });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.data.nonce).toBe(nonce);
    const releaseWithout = await fly.call('DELETE', `${path}/lease`);
    expect(releaseWithout.status).toBe(400);
    const released = await fly.call('DELETE', `${path}/lease`, undefined, { 'fly-machine-lease-nonce': nonce });
    expect(released.status).toBe(200);
    expect(released.body).toEqual({ status: 'success', data: { ok: true } });
    const none = await fly.call('GET', `${path}/lease`);
    expect(none.status).toBe(404);
    expect((await fly.call('POST', `${path}/metadata/k`, { value: 'w' })).status).toBe(204);
  });

  it('returns the nonce on create with lease_ttl', async () => {
    const app = await fly.app();
    const machine = await fly.machine(app, { config: { image }, skip_launch: true, lease_ttl: 30 });
    expect(machine.nonce).toMatch(/^[0-9a-f]{12}$/);
    const shown = await fly.call('GET', `/v1/apps/${app}/machines/${machine.id}/lease`);
    expect(shown.body.data.nonce).toBe(machine.nonce);
  });
});

describe('volumes', () => {
  it('persists a mounted volume across machines; an attached volume cannot be deleted (412)', async () => {
    const app = await fly.app();
    const created = await fly.call('POST', `/v1/apps/${app}/volumes`, { name: 'data', size_gb: 1 });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ name: 'data', state: 'created', size_gb: 1, attached_machine_id: null });
    const volume: string = created.body.id;
    expect(volume).toMatch(/^vol_[0-9a-z]{16}$/);
    const writer = await fly.machine(app, { config: { image, mounts: [{ volume, path: '/data' }] } });
    await fly.waitFor(app, writer.id, 'started');
    const wrote = await fly.call('POST', `/v1/apps/${app}/machines/${writer.id}/exec`, { command: ['sh', '-c', 'echo kept > /data/file'] });
    expect(wrote.body.exit_code).toBe(0);
    expect((await fly.call('GET', `/v1/apps/${app}/volumes/${volume}`)).body.attached_machine_id).toBe(writer.id);
    const busy = await fly.call('POST', `/v1/apps/${app}/machines`, { config: { image, mounts: [{ volume, path: '/data' }] } });
    expect(busy.status).toBe(412);
    const refused = await fly.call('DELETE', `/v1/apps/${app}/volumes/${volume}`);
    expect(refused.status).toBe(412);
    await fly.call('DELETE', `/v1/apps/${app}/machines/${writer.id}?force=true`);
    await fly.waitFor(app, writer.id, 'destroyed');
    const reader = await fly.machine(app, { config: { image, mounts: [{ volume, path: '/mnt/v' }] } });
    await fly.waitFor(app, reader.id, 'started');
    const read = await fly.call('POST', `/v1/apps/${app}/machines/${reader.id}/exec`, { command: ['cat', '/mnt/v/file'] });
    expect(read.body.stdout).toBe('kept\n');
    const missing = await fly.call('POST', `/v1/apps/${app}/machines`, { config: { image, mounts: [{ volume: 'vol_nope', path: '/x' }] } });
    expect(missing.status).toBe(400);
    await fly.call('DELETE', `/v1/apps/${app}/machines/${reader.id}?force=true`);
    await fly.waitFor(app, reader.id, 'destroyed');
    const deleted = await fly.call('DELETE', `/v1/apps/${app}/volumes/${volume}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.state).toBe('destroyed');
    expect((await fly.call('GET', `/v1/apps/${app}/volumes`)).body).toEqual([]);
  });
});

describe('a launch that fails', () => {
  it('leaves the machine failed, and wait answers 412 with the reason', async () => {
    const broken = await startFlyEmulator({ images: { 'broken:latest': '/nonexistent/rootfs' } });
    try {
      const client = flyTestClient(broken.url, broken.token);
      const app = await client.app();
      const machine = await client.machine(app, { config: { image: 'broken:latest' } });
      const waited = await client.call('GET', `/v1/apps/${app}/machines/${machine.id}/wait?state=started&timeout=30`);
      expect(waited.status).toBe(412);
      expect(waited.body.error).toMatch(new RegExp(`^failed_precondition: machine ${machine.id} failed to launch: `));
      const shown = await client.call('GET', `/v1/apps/${app}/machines/${machine.id}`);
      expect(shown.body.state).toBe('failed');
      expect(shown.body.events[0]).toMatchObject({ type: 'launch', status: 'failed', source: 'flyd' });
      const deleted = await client.call('DELETE', `/v1/apps/${app}/machines/${machine.id}`);
      expect(deleted.status).toBe(200);
    } finally {
      await broken.close();
    }
  });
});
