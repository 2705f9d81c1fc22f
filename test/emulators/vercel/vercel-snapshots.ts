/**
 * Snapshots: list (`?name=` for one sandbox's, cursor pagination, newest first by default), get,
 * delete (the local snapshot goes; the record stays, `status: 'deleted'`, so a get still answers
 * and a start from it is Vercel's 410 `snapshot_not_found`), and the tree (each snapshot with its
 * siblings: the snapshots made from the same parent; `sortOrder: 'desc'` walks the anchor's
 * ancestors, `'asc'` its first descendants, and the next page starts at `pagination.next`). Taking one is a session call
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
        const anchorId = request.url.searchParams.get('snapshotId');
        if (!anchorId) throw badRequest('snapshotId', 'is required');
        const anchor = snapshot(state, anchorId);
        const order = request.url.searchParams.get('sortOrder') ?? 'desc';
        if (order !== 'asc' && order !== 'desc') throw badRequest('sortOrder', 'must be asc or desc');
        const limitText = request.url.searchParams.get('limit');
        const limit = limitText === null ? 50 : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badRequest('limit', 'must be a whole number from 1 to 100');
        const all = [...state.snapshots.values()];
        const node = (item: VercelSnapshot) => {
          const siblings = all.filter((other) => other.id !== item.id && other.parentId === item.parentId && other.status !== 'deleted');
          return {
            snapshot: state.snapshotBody(item),
            siblings: siblings.map((other) => state.snapshotBody(other)),
            count: String(siblings.length),
          };
        };
        // One line of the tree from the anchor: its ancestors (desc) or its first descendants (asc).
        const step = (at: VercelSnapshot) =>
          order === 'desc'
            ? at.parentId
              ? state.snapshots.get(at.parentId)
              : undefined
            : all.filter((other) => other.parentId === at.id).sort((a, b) => a.createdAt - b.createdAt)[0];
        const line: VercelSnapshot[] = [];
        let at: VercelSnapshot | undefined = anchor;
        while (at && line.length < limit) {
          line.push(at);
          at = step(at);
        }
        // The next page starts at the next snapshot of the line (the SDK passes it back as snapshotId).
        sendJson(response, 200, {
          snapshots: line.map(node),
          anchor: node(anchor),
          pagination: { count: line.length, next: at?.id ?? null },
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
