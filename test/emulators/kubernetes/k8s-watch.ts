/**
 * Watches: `GET …?watch=true` as the API server streams them. Headers go out at once (client-node
 * 1.4 waits for them before it returns), then one JSON `{type, object}` per line. Without a
 * resourceVersion (or with `0`) the current objects come first as synthetic ADDED events; with
 * one, the changes after it replay from the store's log (410 `Expired` in an ERROR event when it
 * is too old). An object that starts or stops matching the selectors arrives as ADDED or DELETED,
 * as on a cluster. `timeoutSeconds` ends the stream (default 1800 s, the API server's minimum
 * request timeout); `allowWatchBookmarks=true` adds BOOKMARK events every `bookmarkIntervalMs`.
 * A client that stops reading is dropped once 16 MiB are queued for it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseFieldSelector, parseLabelSelector } from './k8s-selectors.js';
import { apiVersionOf, type ResourceType } from './k8s-resources.js';
import { KubeStatusError } from './k8s-status.js';
import type { KubeObject, KubeStore, StoreEvent } from './k8s-store.js';

const maxQueuedBytes = 16 * 1024 * 1024;

export interface WatchSettings {
  bookmarkIntervalMs: number;
}

export function serveWatch(
  store: KubeStore,
  type: ResourceType,
  namespace: string | undefined,
  url: URL,
  raw: IncomingMessage,
  response: ServerResponse,
  settings: WatchSettings,
): void {
  const labels = parseLabelSelector(url.searchParams.get('labelSelector'));
  const fields = parseFieldSelector(url.searchParams.get('fieldSelector'), type.fields);
  const matches = (object: KubeObject | undefined) =>
    object !== undefined &&
    (namespace === undefined || object.metadata.namespace === namespace) &&
    labels(object.metadata.labels) &&
    fields(object);
  const rvText = url.searchParams.get('resourceVersion') ?? '';
  if (rvText !== '' && !/^\d+$/.test(rvText)) throw new KubeStatusError('BadRequest', `invalid resource version: ${rvText}`);
  const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? 1800);
  const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
  response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
  response.flushHeaders();
  let ended = false;
  const send = (line: unknown) => {
    if (ended) return;
    response.write(`${JSON.stringify(line)}\n`);
    if (response.writableLength > maxQueuedBytes) finish();
  };
  const stops: Array<() => void> = [];
  const finish = () => {
    if (ended) return;
    ended = true;
    for (const stop of stops) stop();
    response.end();
  };
  raw.once('close', finish);
  response.once('close', finish);
  let since: number;
  if (rvText === '' || rvText === '0') {
    since = Number(store.resourceVersion);
    for (const object of store.list(type, namespace)) if (matches(object)) send({ type: 'ADDED', object });
  } else since = Number(rvText);
  try {
    stops.push(
      store.watch(type.resource, since, (event: StoreEvent) => {
        const now = matches(event.object);
        if (event.type === 'MODIFIED') {
          const before = matches(event.previous);
          if (now && before) send({ type: 'MODIFIED', object: event.object });
          else if (now) send({ type: 'ADDED', object: event.object });
          else if (before) send({ type: 'DELETED', object: event.object });
        } else if (now) send({ type: event.type, object: event.object });
      }),
    );
  } catch (error) {
    if (error instanceof KubeStatusError) {
      send({ type: 'ERROR', object: error.toStatus() });
      finish();
      return;
    }
    throw error;
  }
  if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
    const timer = setTimeout(finish, timeoutSeconds * 1000);
    stops.push(() => clearTimeout(timer));
  }
  if (bookmarks) {
    const bookmark = () =>
      send({
        type: 'BOOKMARK',
        object: { kind: type.kind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: store.resourceVersion } },
      });
    const timer = setInterval(bookmark, settings.bookmarkIntervalMs);
    stops.push(() => clearInterval(timer));
  }
}
