/**
 * Snapshots, as the `e2b` SDK calls them: `POST /sandboxes/:id/snapshots` (`createSnapshot`,
 * optional `name`), `GET /snapshots` (`Sandbox.listSnapshots`: `sandboxID` and `name` filters,
 * newest first, the `x-next-token` cursor) and `DELETE /templates/:templateID`
 * (`Sandbox.deleteSnapshot`; 404 when there is none, which the SDK reports as `false`).
 *
 * On E2B a snapshot is a template: its `snapshotID` is `<templateID>:default`, or
 * `<team>/<name>:default` when named (the team here is `emulator`), and `Sandbox.create(snapshotID)`
 * (or the bare name) starts a sandbox from it. Here a snapshot is the local provider's
 * `snapshot()` (the sandbox is frozen while it is taken), registered in the emulator's templates
 * with the cpu, memory, envs and user of the sandbox's template. Snapshotting again under a taken
 * name replaces that template's build (same id), as E2B assigns a new build to it.
 *
 * How it differs from E2B: the snapshot holds the filesystem only, not memory (a sandbox
 * started from it runs no process of the original); a paused sandbox is resumed for the moment
 * of the snapshot and paused again.
 */
import { z } from 'zod';
import type { SandboxSnapshotRef } from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { HttpError, sendJson, type E2bRoute } from './e2b-http.js';
import type { E2bSandbox, E2bState } from './e2b-state.js';
import { controlOf, emulatorTeam, liveSandbox, paginate, parseBody } from './e2b-sandboxes.js';

/** One snapshot the emulator took. */
export interface SnapshotRecord {
  readonly templateID: string;
  readonly name: string | undefined;
  readonly sandboxID: string;
  readonly createdAt: number;
  readonly ref: SandboxSnapshotRef;
}

const snapshots = new WeakMap<E2bState, SnapshotRecord[]>();

/** The snapshots of one emulator, newest first. */
export function snapshotsOf(state: E2bState): SnapshotRecord[] {
  let list = snapshots.get(state);
  if (!list) snapshots.set(state, (list = []));
  return list;
}

function snapshotId(record: SnapshotRecord): string {
  return record.name ? `${emulatorTeam}/${record.name}:default` : `${record.templateID}:default`;
}

function snapshotJson(record: SnapshotRecord) {
  return { snapshotID: snapshotId(record), names: record.name ? [snapshotId(record)] : [] };
}

/** A snapshot by any of the ways E2B names it: id, `id:default`, name, `team/name`, with or without the tag. */
export function findSnapshot(state: E2bState, reference: string): SnapshotRecord | undefined {
  const untagged = reference.endsWith(':default') ? reference.slice(0, -':default'.length) : reference;
  const bare = untagged.startsWith(`${emulatorTeam}/`) ? untagged.slice(emulatorTeam.length + 1) : untagged;
  return snapshotsOf(state).find((record) => record.templateID === untagged || (record.name !== undefined && record.name === bare));
}

const snapshotNamePattern = /^[a-z0-9][a-z0-9._-]*$/;
const createSchema = z
  .object({
    name: z.string().regex(snapshotNamePattern, { message: "must be lowercase letters, digits, '.', '_' and '-'" }).optional(),
  })
  .passthrough();

/** Prebuilt templates of the emulator, which no one may delete. */
const prebuilt = /^base(-\d+cpu-\d+mb)?$/;

async function takeSnapshot(found: E2bSandbox): Promise<SandboxSnapshotRef> {
  const { local } = found;
  if (!local.snapshot) throw new HttpError(501, 'The E2B emulator cannot snapshot: its local provider has no snapshot()');
  if (!found.data.paused) return local.snapshot();
  // A frozen sandbox cannot be archived; thaw it for that moment only.
  await local.resume!();
  try {
    return await local.snapshot();
  } finally {
    await local.pause!().catch(() => undefined);
  }
}

async function createSnapshot(state: E2bState, found: E2bSandbox, name: string | undefined): Promise<SnapshotRecord> {
  const control = controlOf(found);
  const list = snapshotsOf(state);
  const replaced = name === undefined ? undefined : list.find((record) => record.name === name);
  if (name !== undefined && !replaced && state.templates.find(name)) throw new HttpError(409, `template '${name}' already exists`);
  const ref = await takeSnapshot(found);
  const templateID = replaced?.templateID ?? randomToken(20).toLowerCase();
  if (replaced) {
    list.splice(list.indexOf(replaced), 1);
    // Deletes the old build's files; sandboxes started from it keep running.
    await state.templates.remove(templateID);
  }
  state.templates.add({
    templateID,
    names: name === undefined ? [] : [name, `${emulatorTeam}/${name}`],
    localImage: ref,
    cpuCount: control.template.cpuCount,
    memoryMB: control.template.memoryMB,
    envs: { ...control.template.envs },
    ...(control.template.workdir !== undefined && { workdir: control.template.workdir }),
    user: control.template.user,
    dispose: async () => {
      await state.provider.deleteSnapshot(ref).catch(() => undefined);
    },
  });
  const record: SnapshotRecord = { templateID, name, sandboxID: found.id, createdAt: Date.now(), ref };
  list.unshift(record);
  return record;
}

export function snapshotRoutes(state: E2bState): E2bRoute[] {
  return [
    {
      method: 'POST',
      pattern: '/sandboxes/:sandboxID/snapshots',
      async handle(request, response) {
        const body = parseBody(createSchema, await request.json());
        const found = liveSandbox(state, request.params.sandboxID!);
        sendJson(response, 201, snapshotJson(await createSnapshot(state, found, body.name)));
      },
    },
    {
      method: 'GET',
      pattern: '/snapshots',
      async handle(request, response) {
        const sandboxID = request.url.searchParams.get('sandboxID');
        const name = request.url.searchParams.get('name');
        const named = name ? findSnapshot(state, name) : undefined;
        const matching = snapshotsOf(state).filter(
          (record) => (!sandboxID || record.sandboxID === sandboxID) && (!name || record === named),
        );
        const { page, nextToken } = paginate(matching, (record) => record.templateID, request);
        sendJson(response, 200, page.map(snapshotJson), nextToken ? { 'x-next-token': nextToken } : {});
      },
    },
    {
      method: 'DELETE',
      pattern: '/templates/:templateID',
      async handle(request, response) {
        const reference = request.params.templateID!;
        const record = findSnapshot(state, reference);
        if (record) {
          const list = snapshotsOf(state);
          list.splice(list.indexOf(record), 1);
          await state.templates.remove(record.templateID);
          return void response.writeHead(204).end();
        }
        const untagged = reference.replace(/:[^:/]*$/, '');
        const template = state.templates.find(untagged);
        if (!template) throw new HttpError(404, `template '${reference}' not found`);
        if (template.names.some((name) => prebuilt.test(name))) throw new HttpError(403, `template '${reference}' is not yours to delete`);
        await state.templates.remove(template.templateID);
        response.writeHead(204).end();
      },
    },
  ];
}
