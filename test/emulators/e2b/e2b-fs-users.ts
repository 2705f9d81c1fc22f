/**
 * Who an envd file call acts as, and where its paths resolve, the way envd decides it: the user
 * comes from `Authorization: Basic base64(<name>:)` (Connect calls) or the `username` query
 * parameter (HTTP /files); without one, the template's default user (its last USER, which the
 * control plane may record under `envdDefaultsKey`), which on E2B's templates is `user` (the
 * emulator falls back to root when the template has no `user`). Paths resolve like envd's: empty
 * is the template's working directory if it has one, else the user's home; `~` and `~/x` expand
 * to the home, a relative path is joined to it, an absolute path is taken as given. Users are
 * looked up in the sandbox's own /etc/passwd.
 */
import { posix } from 'node:path';
import { HttpError, type E2bRequest } from './e2b-http.js';
import { envdDefaultsKey, type EnvdDefaults } from './e2b-process-table.js';
import type { E2bSandbox } from './e2b-state.js';

/** A user of the sandbox, from its passwd database. */
export interface EnvdUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** Why no user could be found; callers map it to their wire error (Connect: unauthenticated, HTTP: 401). */
export class UnknownUserError extends Error {
  constructor(readonly username: string) {
    super(`error looking up user '${username}': user: unknown user ${username}`);
  }
}

/** The default user of E2B's templates. */
export const defaultEnvdUsername = 'user';

const usersKey = 'e2b-fs:users';

interface UserCache {
  readonly lookups: Map<string, Promise<EnvdUser | undefined>>;
  /** Per-sandbox facts the file handlers need once: which uids its user namespace maps. */
  uidMap?: Promise<Array<[number, number]>>;
}

function cache(sandbox: E2bSandbox): UserCache {
  let found = sandbox.data.extra.get(usersKey) as UserCache | undefined;
  if (!found) {
    found = { lookups: new Map() };
    sandbox.data.extra.set(usersKey, found);
  }
  return found;
}

// `getent` where the image has it, else the passwd file itself (busybox images have no getent).
const lookupScript = `getent passwd "$1" 2>/dev/null && exit 0
awk -F: -v n="$1" '$1 == n { print; found = 1 } END { exit !found }' /etc/passwd`;

/** A user of the sandbox by name, or undefined when it has none of that name. Cached per sandbox. */
export function lookupUser(sandbox: E2bSandbox, name: string): Promise<EnvdUser | undefined> {
  const lookups = cache(sandbox).lookups;
  let pending = lookups.get(name);
  if (!pending) {
    pending = (async () => {
      const result = await sandbox.local.run(['/bin/sh', '-c', lookupScript, 'lookup', name]);
      if (result.exitCode !== 0) return undefined;
      const fields = result.stdout.split('\n')[0]!.split(':');
      if (fields.length < 6) return undefined;
      return { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/' };
    })();
    // A failed lookup (the sandbox went away) is not remembered.
    pending.catch(() => lookups.delete(name));
    lookups.set(name, pending);
  }
  return pending;
}

/** The user a call names, or the sandbox's default. Throws `UnknownUserError`. */
export async function resolveUser(sandbox: E2bSandbox, username: string | undefined): Promise<EnvdUser> {
  if (username !== undefined) {
    const user = await lookupUser(sandbox, username);
    if (!user) throw new UnknownUserError(username);
    return user;
  }
  const named = defaultsOf(sandbox)?.user ?? defaultEnvdUsername;
  const user = (await lookupUser(sandbox, named)) ?? (await lookupUser(sandbox, 'root'));
  return user ?? { name: 'root', uid: 0, gid: 0, home: '/root' };
}

/** The user name of a Connect call's `Authorization: Basic` header, if it has one. */
export function basicAuthUser(request: E2bRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Basic\s+(\S+)$/i.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? decoded : decoded.slice(0, colon);
}

/** Why a path cannot be resolved (`~other`). */
export class PathResolveError extends Error {}

function defaultsOf(sandbox: E2bSandbox): EnvdDefaults | undefined {
  return sandbox.data.extra.get(envdDefaultsKey) as EnvdDefaults | undefined;
}

/** The template's working directory, for an empty path. */
export function defaultWorkdir(sandbox: E2bSandbox): string | undefined {
  return defaultsOf(sandbox)?.workdir;
}

/** An envd path resolved for `user`: see the file's comment. Throws `PathResolveError`. */
export function resolveEnvdPath(path: string, user: EnvdUser, workdir?: string): string {
  let expanded = path === '' && workdir ? workdir : path;
  if (expanded.startsWith('~')) {
    if (expanded.length > 1 && expanded[1] !== '/') {
      throw new PathResolveError(`failed to expand path '${path}' for user '${user.name}': cannot expand user-specific home dir`);
    }
    expanded = posix.join(user.home, expanded.slice(1));
  }
  if (posix.isAbsolute(expanded)) return expanded;
  return posix.normalize(posix.join(user.home, expanded)).replace(/(.)\/+$/, '$1');
}

/**
 * The uid ranges (inside, count) the sandbox's user namespace maps. A local sandbox maps only
 * its root, so files cannot be given to uid 1000 there; ownership is then left as it is.
 */
export function mappedUids(sandbox: E2bSandbox): Promise<Array<[number, number]>> {
  const facts = cache(sandbox);
  facts.uidMap ??= sandbox.local.run(['/bin/cat', '/proc/self/uid_map']).then((result) =>
    result.stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/).map(Number))
      .filter((fields) => fields.length === 3 && fields.every(Number.isFinite))
      .map(([inside, , count]) => [inside!, count!] as [number, number]),
  );
  facts.uidMap.catch(() => (facts.uidMap = undefined));
  return facts.uidMap;
}

/** Whether files can be chowned to `user` in this sandbox (its uid and gid are mapped). */
export async function canOwn(sandbox: E2bSandbox, user: EnvdUser): Promise<boolean> {
  const ranges = await mappedUids(sandbox);
  const mapped = (id: number) => ranges.some(([inside, count]) => id >= inside && id < inside + count);
  return mapped(user.uid) && mapped(user.gid);
}

/** An `HttpError` for an unknown user, as envd's /files answers it. */
export function unknownUserHttpError(error: UnknownUserError): HttpError {
  return new HttpError(401, error.message);
}
