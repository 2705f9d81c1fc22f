/**
 * The machine routes of Fly's Machines API (`/v1/apps/{app}/machines…`), as Fly's docs show
 * them:
 * - create (200, the machine in state `created`; it then boots unless `skip_launch`; `name` is
 *   unique among the app's machines that are not destroyed: 409), get (a destroyed machine is
 *   still shown, state `destroyed`), list (`include_deleted`, `region`, `state`, and
 *   `metadata.<key>=<value>` filters, all of which must match), update (`POST` with a whole
 *   `config`: a new `instance_id`; a running machine reboots on it; `name` and `region` are
 *   immutable: 400), delete (`?force=true`; a machine that is not stopped, suspended, created or
 *   failed is refused with 412 `failed_precondition` without it);
 * - start (200 `{ previous_state, migrated, new_host }`), stop (`{ signal, timeout }`, signal
 *   SIGINT and 5 s by default, or the config's `stop_config`), suspend, restart, signal
 *   (`{ signal }` by name or number: flyctl's kill sends `9`), wait (below), events;
 * - leases: acquire (`POST …/lease`, `{ ttl, description }` or `?ttl=`: 201; while another
 *   lease holds, 409 with Fly's `{ status: 'error', message, code }`; with the holder's nonce in
 *   `fly-machine-lease-nonce` it is refreshed: 200), get (404 without one), release (`DELETE`,
 *   the nonce required). While a lease holds, every mutating call (update, start, stop, suspend,
 *   restart, signal, delete, metadata changes) without its nonce is a 409 whose error says
 *   `lease currently held by`;
 * - metadata: get, set (`POST …/metadata/{key}` `{ value }`: 204), delete (204).
 *
 * Wait: `state` (`started`, `stopped`, `suspended`, `destroyed`; `started` by default; repeated
 * or comma-separated for any of several), `timeout` in whole seconds from 1 to 60 (60 by default;
 * outside that range 400 `invalid_argument`, as Fly's API enforces), `instance_id` (or `version`,
 * as fly-go sends it; an older version counts as `stopped`: it was replaced). 200 `{ ok: true }` once the machine is in the
 * state, 408 `deadline_exceeded` when the timeout passes first, 412 at once when the machine can
 * no longer get there (destroyed, or failed to launch).
 */
import { z } from 'zod';
import type { SandboxSignal } from '../../../src/kit/index.js';
import { parseDurationSeconds, parseMachineConfig, type MachineConfig } from './fly-config.js';
import { FlyHttpError, type FlyAnswer, type FlyRequest, type FlyRoute } from './fly-http.js';
import { newLeaseNonce, newMachineName } from './fly-ids.js';
import { activeLease, FlyMachine, signalName, startAnswer, type MachineState } from './fly-machine.js';
import type { FlyState } from './fly-state.js';

export const leaseNonceHeader = 'fly-machine-lease-nonce';
/** Fly's default lease: 30 seconds. */
export const defaultLeaseTtlSeconds = 30;
/** The wait's longest timeout, seconds (Fly's API refuses more). */
export const maxWaitTimeoutSeconds = 60;

const createSchema = z.looseObject({
  name: z.string().min(1).max(63).optional(),
  region: z.string().min(1).optional(),
  config: z.unknown(),
  skip_launch: z.boolean().optional(),
  lease_ttl: z.number().int().min(1).optional(),
  current_version: z.string().optional(),
});

function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FlyHttpError(400, `invalid_argument: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

function leaseTime(expiresAt: number): string {
  return new Date(expiresAt * 1000)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, ' +0000 UTC');
}

/** A mutating call on a leased machine needs the lease's nonce. */
function checkLease(machine: FlyMachine, request: FlyRequest): void {
  const lease = activeLease(machine);
  if (lease && request.header(leaseNonceHeader) !== lease.nonce) {
    throw new FlyHttpError(
      409,
      `machine ID ${machine.id} lease currently held by ${lease.owner}, expires at ${leaseTime(lease.expiresAt)}`,
    );
  }
}

function leaseData(machine: FlyMachine): Record<string, unknown> {
  const lease = machine.lease!;
  return { nonce: lease.nonce, expires_at: lease.expiresAt, owner: lease.owner, description: lease.description, version: lease.version };
}

function takeLease(state: FlyState, machine: FlyMachine, ttlSeconds: number, description: string): void {
  machine.lease = {
    nonce: newLeaseNonce(),
    expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds,
    owner: state.owner,
    description,
    version: machine.instanceId,
  };
}

/** Mounts of `config`: each volume exists in the app and is not attached to another machine. */
function checkMounts(state: FlyState, app: string, config: MachineConfig, machineId: string | undefined): void {
  for (const mount of config.mounts ?? []) {
    const volume = state.volumes.get(mount.volume);
    if (!volume || volume.app !== app || volume.state === 'destroyed') {
      throw new FlyHttpError(400, `invalid_argument: config.mounts: volume ${mount.volume} not found in app ${app}`);
    }
    if (volume.attachedMachineId && volume.attachedMachineId !== machineId) {
      throw new FlyHttpError(412, `failed_precondition: volume ${volume.id} is already attached to machine ${volume.attachedMachineId}`);
    }
  }
}

function attachMounts(state: FlyState, machine: FlyMachine): void {
  const wanted = new Set((machine.config.mounts ?? []).map((mount) => mount.volume));
  for (const volume of state.volumes.values()) {
    if (volume.attachedMachineId === machine.id && !wanted.has(volume.id)) volume.attachedMachineId = undefined;
    if (wanted.has(volume.id)) volume.attachedMachineId = machine.id;
  }
}

function list(state: FlyState, request: FlyRequest): FlyAnswer {
  state.app(request.params.app!);
  const query = request.url.searchParams;
  const includeDeleted = query.get('include_deleted') === 'true';
  const region = query.get('region');
  const states = query.get('state')?.split(',').filter(Boolean);
  const metadata = [...query.entries()].filter(([key]) => key.startsWith('metadata.')).map(([key, value]) => [key.slice(9), value]);
  const machines = state
    .machinesOf(request.params.app!, includeDeleted)
    .filter((machine) => !region || machine.region === region)
    .filter((machine) => !states || states.includes(machine.state))
    .filter((machine) => metadata.every(([key, value]) => machine.config.metadata?.[key!] === value))
    .sort((a, b) => a.createdAt - b.createdAt);
  return { status: 200, body: machines.map((machine) => machine.toJSON()) };
}

async function create(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const app = state.app(request.params.app!).name;
  const body = parseBody(createSchema, await request.json());
  const config = parseMachineConfig(body.config);
  checkMounts(state, app, config, undefined);
  const name = body.name ?? newMachineName();
  if (state.machinesOf(app).some((machine) => machine.name === name)) {
    throw new FlyHttpError(409, `a machine named "${name}" already exists in app ${app}`);
  }
  const machine = new FlyMachine(state, app, name, body.region ?? state.region, config);
  state.machines.set(machine.id, machine);
  attachMounts(state, machine);
  if (body.lease_ttl !== undefined) takeLease(state, machine, body.lease_ttl, '');
  // Its public ports are served before the client learns of it.
  await state.edge?.sync(app);
  // Fly answers with the machine as created; it boots from there.
  const answer = machine.toJSON(machine.lease ? { nonce: machine.lease.nonce } : {});
  if (!body.skip_launch) void machine.start();
  return { status: 200, body: answer };
}

async function update(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const body = parseBody(createSchema, await request.json());
  const config = parseMachineConfig(body.config);
  if (body.name !== undefined && body.name !== machine.name) throw new FlyHttpError(400, 'invalid_argument: name cannot be changed');
  if (body.region !== undefined && body.region !== machine.region)
    throw new FlyHttpError(400, 'invalid_argument: region cannot be changed');
  if (body.current_version !== undefined && body.current_version !== machine.instanceId) {
    throw new FlyHttpError(
      412,
      `failed_precondition: current_version ${body.current_version} is not the machine's version ${machine.instanceId}`,
    );
  }
  if (machine.state === 'destroying') throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is being destroyed`);
  checkMounts(state, machine.app, config, machine.id);
  void machine.update(config, body.skip_launch === true);
  attachMounts(state, machine);
  await state.edge?.sync(machine.app);
  if (body.lease_ttl !== undefined) takeLease(state, machine, body.lease_ttl, '');
  return { status: 200, body: machine.toJSON(machine.lease && body.lease_ttl !== undefined ? { nonce: machine.lease.nonce } : {}) };
}

const settledForDelete: readonly MachineState[] = ['created', 'stopped', 'suspended', 'failed'];

function remove(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const query = request.url.searchParams;
  const force = query.get('force') === 'true' || query.get('kill') === 'true';
  if (machine.state === 'destroying') return { status: 200, body: { ok: true } };
  if (!force && !settledForDelete.includes(machine.state)) {
    throw new FlyHttpError(
      412,
      `failed_precondition: unable to destroy machine, not currently stopped or suspended (state: ${machine.state})`,
    );
  }
  void machine.destroy();
  return { status: 200, body: { ok: true } };
}

function start(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const previous = machine.state;
  if (previous === 'destroying') throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is being destroyed`);
  if (!['started', 'starting', 'restarting', 'replacing'].includes(previous)) void machine.start();
  return { status: 200, body: startAnswer(previous) };
}

async function stopOptions(
  request: FlyRequest,
  body: Record<string, unknown>,
): Promise<{ signal?: SandboxSignal; timeoutSeconds?: number }> {
  const query = request.url.searchParams;
  const givenSignal = body.signal ?? query.get('signal') ?? undefined;
  const givenTimeout = body.timeout ?? query.get('timeout') ?? undefined;
  const signal = givenSignal === undefined || givenSignal === '' ? undefined : signalName(givenSignal);
  if (givenSignal !== undefined && givenSignal !== '' && !signal)
    throw new FlyHttpError(400, `invalid_argument: unknown signal ${String(givenSignal)}`);
  const timeoutSeconds = givenTimeout === undefined || givenTimeout === '' ? undefined : parseDurationSeconds(givenTimeout);
  if (givenTimeout !== undefined && givenTimeout !== '' && timeoutSeconds === undefined) {
    throw new FlyHttpError(400, `invalid_argument: timeout ${String(givenTimeout)} is not a duration`);
  }
  return { ...(signal ? { signal } : {}), ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}) };
}

async function jsonObject(request: FlyRequest): Promise<Record<string, unknown>> {
  const body = await request.json();
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new FlyHttpError(400, 'invalid_argument: body must be an object');
  return body as Record<string, unknown>;
}

async function stop(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const options = await stopOptions(request, await jsonObject(request));
  if (machine.state === 'destroying') throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is being destroyed`);
  if (!['created', 'stopped', 'failed', 'stopping'].includes(machine.state)) void machine.stop(options);
  return { status: 200, body: { ok: true } };
}

function suspend(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  if (machine.state === 'suspended' || machine.state === 'suspending') return { status: 200, body: { ok: true } };
  if (machine.state !== 'started')
    throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is not started (state: ${machine.state})`);
  void machine.suspend();
  return { status: 200, body: { ok: true } };
}

async function restart(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const options = await stopOptions(request, await jsonObject(request));
  if (machine.state !== 'started')
    throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is not started (state: ${machine.state})`);
  void machine.restart(options);
  return { status: 200, body: { ok: true } };
}

async function signal(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const body = await jsonObject(request);
  const name = signalName(body.signal);
  if (!name) throw new FlyHttpError(400, `invalid_argument: unknown signal ${String(body.signal)}`);
  if (machine.state !== 'started')
    throw new FlyHttpError(412, `failed_precondition: machine ${machine.id} is not started (state: ${machine.state})`);
  await machine.signal(name);
  return { status: 200, body: { ok: true } };
}

const waitStates = ['started', 'stopped', 'suspended', 'destroyed'] as const;

function wait(state: FlyState, request: FlyRequest, response: import('node:http').ServerResponse): Promise<FlyAnswer> {
  const machine = state.machine(request.params.app!, request.params.id!);
  const query = request.url.searchParams;
  const states = query
    .getAll('state')
    .flatMap((value) => value.split(','))
    .filter(Boolean);
  if (states.length === 0) states.push('started');
  for (const wanted of states) {
    if (!(waitStates as readonly string[]).includes(wanted)) {
      throw new FlyHttpError(400, `invalid_argument: state must be one of ${waitStates.join(', ')} (got ${wanted})`);
    }
  }
  const timeoutText = query.get('timeout');
  const seconds = timeoutText === null || timeoutText === '' ? maxWaitTimeoutSeconds : Number(timeoutText);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > maxWaitTimeoutSeconds) {
    throw new FlyHttpError(400, `invalid_argument: timeout must be between 1s and 1m0s (got ${timeoutText})`);
  }
  // fly-go's client sends the version as `version`; Fly's docs call it `instance_id`.
  const instanceId = query.get('instance_id') ?? query.get('version');
  const reached = (): boolean =>
    states.includes(machine.state) || (instanceId !== null && instanceId !== machine.instanceId && states.includes('stopped'));
  const hopeless = (): string | undefined => {
    if (machine.state === 'destroyed' && !states.includes('destroyed')) return `failed_precondition: machine ${machine.id} is destroyed`;
    if (machine.state === 'failed')
      return `failed_precondition: machine ${machine.id} failed to launch: ${machine.failure ?? 'unknown error'}`;
    return undefined;
  };
  return new Promise<FlyAnswer>((resolve, reject) => {
    const settle = (): boolean => {
      if (reached()) {
        finish();
        resolve({ status: 200, body: { ok: true, state: machine.state } });
        return true;
      }
      const why = hopeless();
      if (why) {
        finish();
        reject(new FlyHttpError(412, why));
        return true;
      }
      return false;
    };
    const unsubscribe = machine.onChange(() => void settle());
    const timer = setTimeout(() => {
      finish();
      reject(
        new FlyHttpError(
          408,
          `deadline_exceeded: machine ${machine.id} did not reach ${states.join(' or ')} within ${seconds}s (state: ${machine.state})`,
        ),
      );
    }, seconds * 1000);
    const onClose = () => finish();
    response.on('close', onClose);
    function finish() {
      unsubscribe();
      clearTimeout(timer);
      response.off('close', onClose);
    }
    settle();
  });
}

// ---- leases --------------------------------------------------------------------------------

async function acquireLease(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  const body = await jsonObject(request);
  const ttlGiven = body.ttl ?? request.url.searchParams.get('ttl') ?? undefined;
  const ttl = ttlGiven === undefined ? defaultLeaseTtlSeconds : Number(ttlGiven);
  if (!Number.isInteger(ttl) || ttl < 1)
    throw new FlyHttpError(400, `invalid_argument: ttl must be a whole number of seconds (got ${String(ttlGiven)})`);
  const description = typeof body.description === 'string' ? body.description : '';
  const lease = activeLease(machine);
  if (lease) {
    if (request.header(leaseNonceHeader) !== lease.nonce) {
      const message = `machine ID ${machine.id} lease currently held by ${lease.owner}, expires at ${leaseTime(lease.expiresAt)}`;
      throw new FlyHttpError(409, message, { status: 'error', message, code: 'invalid' });
    }
    lease.expiresAt = Math.floor(Date.now() / 1000) + ttl;
    if (description) lease.description = description;
    return { status: 200, body: { status: 'success', data: leaseData(machine) } };
  }
  takeLease(state, machine, ttl, description);
  return { status: 201, body: { status: 'success', data: leaseData(machine) } };
}

function getLease(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  if (!activeLease(machine)) throw new FlyHttpError(404, 'lease not found');
  return { status: 200, body: { status: 'success', data: leaseData(machine) } };
}

function releaseLease(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  const nonce = request.header(leaseNonceHeader);
  if (!nonce) throw new FlyHttpError(400, `bad request: the ${leaseNonceHeader} header is required to release a lease`);
  const lease = activeLease(machine);
  if (lease && lease.nonce !== nonce) checkLease(machine, request);
  machine.lease = undefined;
  return { status: 200, body: { status: 'success', data: { ok: true } } };
}

// ---- metadata ------------------------------------------------------------------------------

const metadataKey = /^[A-Za-z0-9_.-]{1,256}$/;

async function setMetadata(state: FlyState, request: FlyRequest): Promise<FlyAnswer> {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const key = request.params.key!;
  if (!metadataKey.test(key))
    throw new FlyHttpError(400, `invalid_argument: metadata key ${JSON.stringify(key)} is not letters, digits, _ . -`);
  const body = await jsonObject(request);
  if (typeof body.value !== 'string') throw new FlyHttpError(400, 'invalid_argument: value must be a string');
  machine.config = { ...machine.config, metadata: { ...machine.config.metadata, [key]: body.value } };
  return { status: 204 };
}

function deleteMetadata(state: FlyState, request: FlyRequest): FlyAnswer {
  const machine = state.liveMachine(request.params.app!, request.params.id!);
  checkLease(machine, request);
  const metadata = { ...machine.config.metadata };
  delete metadata[request.params.key!];
  machine.config = { ...machine.config, metadata };
  return { status: 204 };
}

export function machineRoutes(state: FlyState): FlyRoute[] {
  const base = '/v1/apps/:app/machines';
  const one = `${base}/:id`;
  return [
    { method: 'GET', pattern: base, handle: async (request) => list(state, request) },
    { method: 'POST', pattern: base, handle: (request) => create(state, request) },
    {
      method: 'GET',
      pattern: one,
      handle: async (request) => ({ status: 200, body: state.machine(request.params.app!, request.params.id!).toJSON() }),
    },
    { method: 'POST', pattern: one, handle: (request) => update(state, request) },
    { method: 'DELETE', pattern: one, handle: async (request) => remove(state, request) },
    { method: 'POST', pattern: `${one}/start`, handle: async (request) => start(state, request) },
    { method: 'POST', pattern: `${one}/stop`, handle: (request) => stop(state, request) },
    { method: 'POST', pattern: `${one}/suspend`, handle: async (request) => suspend(state, request) },
    { method: 'POST', pattern: `${one}/restart`, handle: (request) => restart(state, request) },
    { method: 'POST', pattern: `${one}/signal`, handle: (request) => signal(state, request) },
    { method: 'GET', pattern: `${one}/wait`, handle: (request, response) => wait(state, request, response) },
    {
      method: 'GET',
      pattern: `${one}/events`,
      handle: async (request) => ({ status: 200, body: state.machine(request.params.app!, request.params.id!).events }),
    },
    { method: 'POST', pattern: `${one}/lease`, handle: (request) => acquireLease(state, request) },
    { method: 'GET', pattern: `${one}/lease`, handle: async (request) => getLease(state, request) },
    { method: 'DELETE', pattern: `${one}/lease`, handle: async (request) => releaseLease(state, request) },
    {
      method: 'GET',
      pattern: `${one}/metadata`,
      handle: async (request) => ({ status: 200, body: state.liveMachine(request.params.app!, request.params.id!).config.metadata ?? {} }),
    },
    { method: 'POST', pattern: `${one}/metadata/:key`, handle: (request) => setMetadata(state, request) },
    { method: 'DELETE', pattern: `${one}/metadata/:key`, handle: async (request) => deleteMetadata(state, request) },
  ];
}
