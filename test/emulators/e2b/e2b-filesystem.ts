/**
 * envd's filesystem service (`filesystem.Filesystem` over Connect with the JSON codec): Stat,
 * MakeDir, Move, ListDir, Remove, the WatchDir stream and the polling watcher (CreateWatcher,
 * GetWatcherEvents, RemoveWatcher), with envd's semantics (see e2b-fs-tools.ts and
 * e2b-fs-watch.ts) and its error codes:
 *
 * - a missing path is `not_found` (the SDK's FileNotFoundError; `exists` answers false);
 * - MakeDir of an existing directory is `already_exists` (the SDK's `makeDir` answers false),
 *   of an existing file `invalid_argument`; ListDir and WatchDir of a file `invalid_argument`;
 * - an unknown user is `unauthenticated`; a path the user's home cannot expand is
 *   `invalid_argument`; anything else the sandbox refuses is `internal` with envd's message;
 * - a sandbox that is gone (ended, or paused) is `unavailable`, which the SDK reports as a
 *   timeout of the sandbox, as it does for E2B's proxy answering 502.
 *
 * Every path resolves for the calling user (see e2b-fs-users.ts).
 */
import { randomToken } from '../shared/ids.js';
import { SandboxPausedError, SandboxNotFoundError } from '../../../src/kit/index.js';
import { ConnectError, connectRoutes, type ConnectMethod } from './e2b-connect.js';
import { HttpError, type E2bRequest, type E2bRoute } from './e2b-http.js';
import type { E2bSandbox, E2bState } from './e2b-state.js';
import { EnvdFsError, changeOwner, listEntries, makeDirectory, moveEntry, removeEntry, statEntry, type EnvdEntry } from './e2b-fs-tools.js';
import { readMetadata } from './e2b-fs-metadata.js';
import { EnvdWatcher, type EnvdWatchEvent } from './e2b-fs-watch.js';
import {
  PathResolveError,
  UnknownUserError,
  basicAuthUser,
  canOwn,
  defaultWorkdir,
  resolveEnvdPath,
  resolveUser,
  type EnvdUser,
} from './e2b-fs-users.js';

/** envd's EntryInfo as protobuf's JSON spells it (enum names, int64 as a string, defaults left out). */
export function entryJson(entry: EnvdEntry): Record<string, unknown> {
  const json: Record<string, unknown> = { name: entry.name };
  if (entry.type) json.type = fileTypeNames[entry.type];
  json.path = entry.path;
  if (entry.size !== 0) json.size = String(entry.size);
  if (entry.mode !== 0) json.mode = entry.mode;
  json.permissions = entry.permissions;
  json.owner = entry.owner;
  json.group = entry.group;
  if (entry.modifiedTime) json.modifiedTime = entry.modifiedTime;
  if (entry.symlinkTarget !== undefined) json.symlinkTarget = entry.symlinkTarget;
  if (entry.metadata) json.metadata = entry.metadata;
  return json;
}

const fileTypeNames: Record<NonNullable<EnvdEntry['type']>, string> = {
  file: 'FILE_TYPE_FILE',
  directory: 'FILE_TYPE_DIRECTORY',
  symlink: 'FILE_TYPE_SYMLINK',
};

/** The entries with their metadata, where the sandbox keeps any (see e2b-fs-metadata.ts). */
async function withMetadata<T extends EnvdEntry>(sandbox: E2bSandbox, entries: T[]): Promise<T[]> {
  const found = await readMetadata(
    sandbox,
    entries.map((entry) => entry.path),
  );
  for (const entry of entries) {
    const metadata = found.get(entry.path);
    if (metadata) entry.metadata = metadata;
  }
  return entries;
}

/** One entry with its metadata. */
async function described(sandbox: E2bSandbox, entry: EnvdEntry): Promise<Record<string, unknown>> {
  const [withData] = await withMetadata(sandbox, [entry]);
  return entryJson(withData!);
}

/** What every call needs: the sandbox, its user and a path resolver. */
interface CallContext {
  sandbox: E2bSandbox;
  user: EnvdUser;
  resolve(path: unknown): string;
}

async function callContext(state: E2bState, request: E2bRequest): Promise<CallContext> {
  let sandbox: E2bSandbox;
  try {
    sandbox = state.envdSandbox(request);
  } catch (error) {
    // E2B's proxy answers 502 for a sandbox that is gone; Connect clients read that as unavailable.
    if (error instanceof HttpError && error.status === 502) throw new ConnectError('unavailable', error.message);
    throw error;
  }
  const username = basicAuthUser(request);
  const user = await resolveUser(sandbox, username).catch((error: unknown) => {
    if (error instanceof UnknownUserError) throw new ConnectError('unauthenticated', `invalid username: '${error.username}'`);
    throw connectErrorOf(error, sandbox);
  });
  return {
    sandbox,
    user,
    resolve(path) {
      try {
        return resolveEnvdPath(typeof path === 'string' ? path : '', user, defaultWorkdir(sandbox));
      } catch (error) {
        if (error instanceof PathResolveError) throw new ConnectError('invalid_argument', error.message);
        throw error;
      }
    },
  };
}

/** A sandbox-side failure as envd's Connect error. */
function connectErrorOf(error: unknown, sandbox: E2bSandbox): unknown {
  if (error instanceof ConnectError) return error;
  if (error instanceof EnvdFsError) {
    if (error.fault === 'not_found') return new ConnectError('not_found', error.message);
    if (error.fault === 'already_exists') return new ConnectError('already_exists', error.message);
    if (error.fault === 'exists_not_directory' || error.fault === 'not_directory')
      return new ConnectError('invalid_argument', error.message);
    return new ConnectError('internal', error.message);
  }
  if (SandboxPausedError.isInstance(error) || SandboxNotFoundError.isInstance(error) || sandbox.end) {
    return new ConnectError('unavailable', `The sandbox ${sandbox.id} was not found`);
  }
  return error;
}

/** A unary method: `run` gets the call's context; sandbox failures become Connect errors. */
function unary(state: E2bState, run: (message: any, context: CallContext) => Promise<unknown>): ConnectMethod {
  return {
    kind: 'unary',
    async handle(message, request) {
      const context = await callContext(state, request);
      try {
        return await run(message ?? {}, context);
      } catch (error) {
        throw connectErrorOf(error, context.sandbox);
      }
    },
  };
}

/** Gives a new path to the calling user where the sandbox can (see `canOwn`). */
async function giveToUser(context: CallContext, path: string): Promise<void> {
  if (context.user.uid === 0 && context.user.gid === 0) return;
  if (await canOwn(context.sandbox, context.user)) await changeOwner(context.sandbox.local, path, context.user.uid, context.user.gid);
}

/** Checks that `path` is a directory, following symlinks, as envd's watch calls do. */
async function checkWatchable(sandbox: E2bSandbox, path: string): Promise<void> {
  const result = await sandbox.local.run(['/bin/sh', '-c', '[ -e "$1" ] || exit 60; [ -d "$1" ] || exit 64', 'check', path]);
  if (result.exitCode === 60) throw new ConnectError('not_found', `path ${path} not found: stat ${path}: no such file or directory`);
  if (result.exitCode === 64) throw new ConnectError('invalid_argument', `path ${path} not a directory: <nil>`);
  if (result.exitCode !== 0) throw new ConnectError('internal', `error statting path ${path}: ${result.stderr.trim()}`);
}

function eventJson(event: EnvdWatchEvent): Record<string, unknown> {
  return { name: event.name, type: event.type, ...(event.entry ? { entry: entryJson(event.entry) } : {}) };
}

/** envd's default keepalive interval of a stream, when the client names none. */
const defaultKeepaliveSeconds = 90;

function keepaliveMs(request: E2bRequest): number {
  const header = request.headers['keepalive-ping-interval'];
  const seconds = typeof header === 'string' && /^\d+$/.test(header.trim()) ? Number(header) : defaultKeepaliveSeconds;
  return Math.max(1, seconds) * 1000;
}

const watchersKey = 'e2b-fs:watchers';

/** Events a polling watcher holds for a client that does not fetch them, before it fails. */
export const pollingWatcherLimit = 100_000;

/** A polling watcher: its events gathered as they come, until fetched. */
interface PollingWatcher {
  readonly watcher: EnvdWatcher;
  readonly events: EnvdWatchEvent[];
  error: ConnectError | undefined;
}

function pollingWatchers(sandbox: E2bSandbox): Map<string, PollingWatcher> {
  let watchers = sandbox.data.extra.get(watchersKey) as Map<string, PollingWatcher> | undefined;
  if (!watchers) {
    watchers = new Map();
    sandbox.data.extra.set(watchersKey, watchers);
    const registered = watchers;
    // The watchers go with the sandbox.
    void sandbox.ended.then(() => {
      for (const polling of registered.values()) void polling.watcher.close();
      registered.clear();
    });
  }
  return watchers;
}

async function gather(polling: PollingWatcher): Promise<void> {
  try {
    for (let batch = await polling.watcher.next(); batch; batch = await polling.watcher.next()) {
      polling.events.push(...batch);
      if (polling.events.length > pollingWatcherLimit) {
        polling.error = new ConnectError('internal', `watcher error: more than ${pollingWatcherLimit} events were not fetched`);
        await polling.watcher.close();
        return;
      }
    }
  } catch (error) {
    polling.error = error instanceof ConnectError ? error : new ConnectError('internal', `watcher error: ${String(error)}`);
    await polling.watcher.close();
  }
}

export function filesystemRoutes(state: E2bState): E2bRoute[] {
  return connectRoutes('filesystem.Filesystem', {
    Stat: unary(state, async (message, context) => ({
      entry: await described(context.sandbox, await statEntry(context.sandbox.local, context.resolve(message.path))),
    })),

    MakeDir: unary(state, async (message, context) => {
      const path = context.resolve(message.path);
      await makeDirectory(context.sandbox.local, path);
      await giveToUser(context, path);
      return { entry: await described(context.sandbox, await statEntry(context.sandbox.local, path)) };
    }),

    Move: unary(state, async (message, context) => {
      const entry = await moveEntry(context.sandbox.local, context.resolve(message.source), context.resolve(message.destination));
      return { entry: await described(context.sandbox, entry) };
    }),

    ListDir: unary(state, async (message, context) => {
      const depth = Number(message.depth ?? 0);
      if (!Number.isInteger(depth) || depth < 0) throw new ConnectError('invalid_argument', `invalid depth ${String(message.depth)}`);
      const entries = await listEntries(context.sandbox.local, context.resolve(message.path), depth === 0 ? 1 : depth);
      return { entries: (await withMetadata(context.sandbox, entries)).map(entryJson) };
    }),

    Remove: unary(state, async (message, context) => {
      await removeEntry(context.sandbox.local, context.resolve(message.path));
      return {};
    }),

    WatchDir: {
      kind: 'serverStream',
      async *handle(message, request, signal) {
        const context = await callContext(state, request);
        let watcher: EnvdWatcher;
        const root = context.resolve(message.path);
        try {
          await checkWatchable(context.sandbox, root);
          watcher = await EnvdWatcher.start(context.sandbox.local, root, {
            recursive: message.recursive === true,
            includeEntry: message.includeEntry === true || message.include_entry === true,
          });
        } catch (error) {
          throw connectErrorOf(error, context.sandbox);
        }
        const aborted = new Promise<'aborted'>((resolve) => {
          if (signal.aborted) resolve('aborted');
          signal.addEventListener('abort', () => resolve('aborted'), { once: true });
        });
        const gone = context.sandbox.ended.then(() => 'gone' as const);
        const interval = keepaliveMs(request);
        try {
          yield { start: {} };
          let pending: Promise<EnvdWatchEvent[] | null> = watcher.next();
          for (;;) {
            let timer: NodeJS.Timeout | undefined;
            const tick = new Promise<'keepalive'>((resolve) => (timer = setTimeout(() => resolve('keepalive'), interval)));
            const outcome = await Promise.race([pending, tick, aborted, gone]).finally(() => clearTimeout(timer));
            if (outcome === 'aborted') return;
            // The sandbox went away: its connections drop, as they do on E2B, and the SDK asks /health why.
            if (outcome === 'gone') return void request.raw.socket?.destroy();
            if (outcome === 'keepalive') {
              yield { keepalive: {} };
              continue;
            }
            if (outcome === null) {
              // The watcher ended: its directory went away, or the sandbox is going. Either way
              // nothing more comes, and the stream stays until the client or the sandbox leaves.
              pending = new Promise<never>(() => undefined);
              continue;
            }
            await withMetadata(
              context.sandbox,
              outcome.flatMap((event) => (event.entry ? [event.entry] : [])),
            );
            for (const event of outcome) yield { filesystem: eventJson(event) };
            pending = watcher.next();
          }
        } finally {
          await watcher.close();
        }
      },
    },

    CreateWatcher: unary(state, async (message, context) => {
      const root = context.resolve(message.path);
      await checkWatchable(context.sandbox, root);
      const watcher = await EnvdWatcher.start(context.sandbox.local, root, {
        recursive: message.recursive === true,
        includeEntry: message.includeEntry === true || message.include_entry === true,
      });
      const id = `w${randomToken(20).toLowerCase()}`;
      const polling: PollingWatcher = { watcher, events: [], error: undefined };
      pollingWatchers(context.sandbox).set(id, polling);
      void gather(polling);
      return { watcherId: id };
    }),

    GetWatcherEvents: unary(state, async (message, context) => {
      const id = String(message.watcherId ?? message.watcher_id ?? '');
      const polling = pollingWatchers(context.sandbox).get(id);
      if (!polling) throw new ConnectError('not_found', `watcher with id ${id} not found`);
      if (polling.error) throw polling.error;
      return { events: polling.events.splice(0).map(eventJson) };
    }),

    RemoveWatcher: unary(state, async (message, context) => {
      const id = String(message.watcherId ?? message.watcher_id ?? '');
      const watchers = pollingWatchers(context.sandbox);
      const polling = watchers.get(id);
      if (!polling) throw new ConnectError('not_found', `watcher with id ${id} not found`);
      watchers.delete(id);
      await polling.watcher.close();
      return {};
    }),
  });
}
