/**
 * Snapshots: list (`?name=` for one sandbox's, cursor pagination, newest first by default), get,
 * delete (the local snapshot goes; the record stays, `status: 'deleted'`, so a get still answers
 * and a start from it is Vercel's 410 `snapshot_not_found`), and the tree (each snapshot with its
 * siblings: the snapshots made from the same parent). Taking one is a session call
 * (vercel-sandboxes.ts): on Vercel it stops the session, and so it does here. Drives are not
 * emulated: their routes are a 501 naming the call.
 */
import { HttpError, badRequest, notEmulated, sendJson, type VercelRoute } from './vercel-http.js';
import type { VercelSnapshot, VercelState } from './vercel-state.js';

function snapshot(state: VercelState, id: string): VercelSnapshot {
  const found = state.snapshots.get(id);
  if (!found) throw new HttpError(404, 'not_found', `Snapshot "${id}" not found`);
  return found;
}

function page<T>(items: T[], url: URL): { items: T[]; next: string | null } {
  const limitText = url.searchParams.get('limit');
  const limit = limitText === null ? 50 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badRequest('limit', 'must be a whole number from 1 to 100');
  const cursor = url.searchParams.get('cursor');
  const start =
    cursor === null
      ? 0
      : Number(
          Buffer.from(cursor, 'base64url')
            .toString('utf8')
            .replace(/^offset:/, ''),
        );
  if (!Number.isInteger(start) || start < 0) throw badRequest('cursor', 'is not a cursor this emulator gave');
  const next = start + limit < items.length ? Buffer.from(`offset:${start + limit}`).toString('base64url') : null;
  return { items: items.slice(start, start + limit), next };
}

function sorted(items: VercelSnapshot[], url: URL): VercelSnapshot[] {
  const order = url.searchParams.get('sortOrder') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw badRequest('sortOrder', 'must be asc or desc');
  return [...items].sort((a, b) => (order === 'asc' ? a.createdAt - b.createdAt : b.createdAt - a.createdAt));
}

export function snapshotRoutes(state: VercelState): VercelRoute[] {
  const drives = (method: string, pattern: string): VercelRoute => ({
    method,
    pattern,
    async handle(request) {
      throw notEmulated(`${method} ${request.url.pathname}`, 'drives (Drive.getOrCreate, Drive.list, mounts) are not emulated');
    },
  });
  return [
    {
      method: 'GET',
      pattern: '/v2/sandboxes/snapshots',
      async handle(request, response) {
        state.checkProject(request.url.searchParams.get('project'));
        const name = request.url.searchParams.get('name');
        const live = [...state.snapshots.values()].filter(
          (item) => item.status !== 'deleted' && (name === null || item.sandboxName === name),
        );
        const { items, next } = page(sorted(live, request.url), request.url);
        sendJson(response, 200, { snapshots: items.map((item) => state.snapshotBody(item)), pagination: { count: items.length, next } });
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/snapshots/tree',
      async handle(request, response) {
        state.checkProject(request.url.searchParams.get('project'));
        const live = [...state.snapshots.values()].filter((item) => item.status !== 'deleted');
        const anchorId = request.url.searchParams.get('snapshotId');
        const anchor = anchorId === null ? undefined : snapshot(state, anchorId);
        const node = (item: VercelSnapshot) => {
          const siblings = live.filter((other) => other.id !== item.id && other.parentId === item.parentId);
          return {
            snapshot: state.snapshotBody(item),
            siblings: siblings.map((other) => state.snapshotBody(other)),
            count: String(siblings.length),
          };
        };
        // From the anchor up to its root, as the tree's path; without one, every root.
        const path: VercelSnapshot[] = [];
        for (let at = anchor; at; at = at.parentId ? state.snapshots.get(at.parentId) : undefined) path.push(at);
        const nodes = anchor ? path : live.filter((item) => item.parentId === undefined);
        const { items, next } = page(sorted(nodes, request.url), request.url);
        sendJson(response, 200, {
          snapshots: items.map(node),
          ...(anchor ? { anchor: node(anchor) } : {}),
          pagination: { count: items.length, next },
        });
      },
    },
    {
      method: 'GET',
      pattern: '/v2/sandboxes/snapshots/:snapshotId',
      async handle(request, response) {
        sendJson(response, 200, { snapshot: state.snapshotBody(snapshot(state, request.params.snapshotId!)) });
      },
    },
    {
      method: 'DELETE',
      pattern: '/v2/sandboxes/snapshots/:snapshotId',
      async handle(request, response) {
        const found = snapshot(state, request.params.snapshotId!);
        await state.deleteSnapshot(found);
        sendJson(response, 200, { snapshot: state.snapshotBody(found) });
      },
    },
    drives('GET', '/v2/sandboxes/drives'),
    drives('POST', '/v2/sandboxes/drives/:name'),
    drives('DELETE', '/v2/sandboxes/drives/:name'),
  ];
}
