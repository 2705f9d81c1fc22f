/**
 * envd's filesystem operations, each one sh program run inside the sandbox (so every path
 * resolves in the sandbox's view), with envd's semantics rather than the shared file tools'
 * (test/emulators/shared/file-tools.ts, which this emulator uses for whole-file reads and writes):
 *
 * - entries are envd's: `lstat` of the path, but a symlink reports the type and permission bits
 *   of what it finally points at and, as `symlinkTarget`, that fully resolved path (the link's
 *   own path when it dangles, with no type); `permissions` is Go's `FileMode.String()` of the
 *   link or file itself (`-rw-r--r--`, `drwxr-xr-x`, `Lrwxrwxrwx`);
 * - a listing follows the listed path if it is a symlink, walks `depth` levels without following
 *   symlinks below, in Go's `WalkDir` order (names sorted at each level, a directory before its
 *   contents), and names entries under the path as requested;
 * - make dir fails when the path exists (a directory: already exists; anything else: invalid),
 *   and otherwise makes the parents too; move makes the destination's parents and renames over
 *   whatever is there; remove removes a whole tree and succeeds for a missing path.
 *
 * Stat and list need GNU find (`-printf`) and readlink; everything else only sh and coreutils.
 */
import { posix } from 'node:path';
import { readBytes } from '../../../src/kit/index.js';
import type { LocalSandbox } from '../../../adapters/local/index.js';

/** What went wrong, in envd's terms; the message is envd's wording. */
export type EnvdFault = 'not_found' | 'not_directory' | 'is_directory' | 'already_exists' | 'exists_not_directory' | 'failed';

export class EnvdFsError extends Error {
  constructor(
    readonly fault: EnvdFault,
    message: string,
  ) {
    super(message);
    this.name = 'EnvdFsError';
  }
}

/** An entry as envd describes it, before it becomes JSON. */
export interface EnvdEntry {
  name: string;
  /** Undefined for a dangling symlink or a FIFO, socket or device (envd's FILE_TYPE_UNSPECIFIED). */
  type: 'file' | 'directory' | 'symlink' | undefined;
  path: string;
  size: number;
  /** Permission bits (0o777) of the entry, or of its final target for a symlink. */
  mode: number;
  /** Go's `FileMode.String()` of the entry itself. */
  permissions: string;
  owner: string;
  group: string;
  /** RFC 3339 with nanoseconds, as protobuf's JSON spells a Timestamp. */
  modifiedTime: string | undefined;
  symlinkTarget?: string;
  /** The file's `user.e2b.*` extended attributes (see e2b-fs-metadata.ts). */
  metadata?: Record<string, string>;
}

// Exit codes of the programs, one per fault.
const exits: Record<number, EnvdFault> = {
  60: 'not_found',
  64: 'not_directory',
  63: 'is_directory',
  68: 'already_exists',
  69: 'exists_not_directory',
};

// A tag, then: own type, final type, size, permission bits, mtime, owner, group, path relative to the start
const entryFormat = `'E\\0%y\\0%Y\\0%s\\0%m\\0%T@\\0%u\\0%g\\0%P\\0'`;
const fieldsPerEntry = 8;

/**
 * Run as `sh -c <this> details <base> <symlink>...`: for each symlink, a tag, its path relative to
 * `base`, what it finally resolves to (itself when it dangles) and the target's permission bits
 * (empty when it dangles).
 */
const symlinkDetails = `base=$1; shift; for p; do
  t=$(readlink -e -- "$p") || t=$p
  m=$(stat -L -c %a -- "$p" 2>/dev/null) || m=
  r=\${p#"$base"}; r=\${r#/}
  printf 'S\\0%s\\0%s\\0%s\\0' "$r" "$t" "$m"
done`;

/** The programs; `$1` is always the path. Stat and list print entry records, then symlink details. */
export const envdFsScripts = {
  // lstat of the path itself (a path below a file is not "not found" but an lstat failure). $2 = symlinkDetails.
  stat: `export LC_ALL=C
exec 3>&1; err=$(find "$1" -maxdepth 0 -printf ${entryFormat} 2>&1 >&3) || { case "$err" in *"No such file or directory"*) exit 60;; esac; printf '%s\\n' "$err" >&2; exit 1; }
if [ -L "$1" ]; then sh -c "$2" details "$1" "$1"; fi`,
  // $2 = depth, $3 = symlinkDetails. The listed path is followed if it is a symlink; nothing below it is.
  list: `export LC_ALL=C
[ -e "$1" ] || exit 60; [ -d "$1" ] || exit 64
root=$(readlink -e -- "$1") || exit 60
find "$root" -mindepth 1 -maxdepth "$2" -printf ${entryFormat} || exit 1
find "$root" -mindepth 1 -maxdepth "$2" -type l -exec sh -c "$3" details "$root" {} +`,
  // Exclusive, with parents.
  mkdir: `export LC_ALL=C
if [ -e "$1" ]; then [ -d "$1" ] && exit 68; exit 69; fi
err=$(mkdir -p -- "$1" 2>&1) || { printf 'failed to create directory: %s\\n' "$err" >&2; exit 1; }`,
  // $2 = destination. Its parents are made; it is replaced like rename(2) does.
  move: `export LC_ALL=C
[ -e "$1" ] || [ -L "$1" ] || exit 60
err=$(mkdir -p -- "$(dirname -- "$2")" 2>&1) || { printf 'failed to create directory: %s\\n' "$err" >&2; exit 1; }
err=$(mv -f -T -- "$1" "$2" 2>&1) || { printf 'error renaming: %s\\n' "$err" >&2; exit 1; }`,
  // Like os.RemoveAll: a missing path is fine.
  remove: `export LC_ALL=C
err=$(rm -rf -- "$1" 2>&1) || { printf 'error removing file or directory: %s\\n' "$err" >&2; exit 1; }`,
  // $2 = uid:gid.
  chown: `export LC_ALL=C
err=$(chown -h -- "$2" "$1" 2>&1) || { printf 'error changing file ownership: %s\\n' "$err" >&2; exit 1; }`,
} as const;

type ScriptName = keyof typeof envdFsScripts;

/** Runs one program; resolves to its stdout, or throws `EnvdFsError`. */
async function runScript(sandbox: LocalSandbox, name: ScriptName, args: string[], signal?: AbortSignal): Promise<Uint8Array> {
  const process = await sandbox.exec(['/bin/sh', '-c', envdFsScripts[name], name, ...args], { signal });
  void process.stdin.close().catch(() => undefined);
  const [stdout, stderr, status] = await Promise.all([
    readBytes(process.stdout),
    readBytes(process.stderr, { maxBytes: 8000 }).catch(() => new Uint8Array()),
    process.wait(),
  ]);
  if (status.exitCode === 0) return stdout;
  const fault = exits[status.exitCode] ?? 'failed';
  const detail = new TextDecoder().decode(stderr).trim();
  throw new EnvdFsError(fault, detail || `${name} ${args[0]} exited ${status.exitCode}`);
}

/** envd's Stat (lstat, symlinks described by their target). Throws `EnvdFsError`. */
export async function statEntry(sandbox: LocalSandbox, path: string, signal?: AbortSignal): Promise<EnvdEntry> {
  const output = await runScript(sandbox, 'stat', [path, symlinkDetails], signal).catch((error: unknown) => {
    if (error instanceof EnvdFsError && error.fault === 'not_found') {
      throw new EnvdFsError('not_found', `file not found: lstat ${path}: no such file or directory`);
    }
    if (error instanceof EnvdFsError) throw new EnvdFsError('failed', `error getting file info: ${error.message}`);
    throw error;
  });
  const [entry] = parseOutput(output, (relative) => (relative === '' ? path : posix.join(path, relative)));
  if (!entry) throw new EnvdFsError('failed', `error getting file info: stat of ${path} printed nothing`);
  // Go names an entry by the last element of the path as given ("/" for the root).
  entry.name = path === '/' ? '/' : posix.basename(path.replace(/\/+$/, '')) || '/';
  entry.path = path;
  return entry;
}

/** envd's ListDir with `depth` (at least 1). Throws `EnvdFsError`. */
export async function listEntries(sandbox: LocalSandbox, path: string, depth: number, signal?: AbortSignal): Promise<EnvdEntry[]> {
  const output = await runScript(sandbox, 'list', [path, String(depth), symlinkDetails], signal).catch((error: unknown) => {
    if (!(error instanceof EnvdFsError)) throw error;
    if (error.fault === 'not_found') throw new EnvdFsError('not_found', `path not found: lstat ${path}: no such file or directory`);
    if (error.fault === 'not_directory') throw new EnvdFsError('not_directory', `path is not a directory: ${path}`);
    throw new EnvdFsError('failed', `error reading directory ${path}: ${error.message}`);
  });
  const entries = parseOutput(output, (relative) => posix.join(path, relative));
  return entries.sort((a, b) => compareWalkOrder(a.path, b.path));
}

/** envd's MakeDir: the new directory's entry. Throws `EnvdFsError` (`already_exists` for a directory). */
export async function makeDirectory(sandbox: LocalSandbox, path: string, signal?: AbortSignal): Promise<EnvdEntry> {
  await runScript(sandbox, 'mkdir', [path], signal).catch((error: unknown) => {
    if (!(error instanceof EnvdFsError)) throw error;
    if (error.fault === 'already_exists') throw new EnvdFsError('already_exists', `directory already exists: ${path}`);
    if (error.fault === 'exists_not_directory') {
      throw new EnvdFsError('exists_not_directory', `path already exists but it is not a directory: ${path}`);
    }
    throw error;
  });
  return statEntry(sandbox, path, signal);
}

/** envd's Move: the destination's entry. Throws `EnvdFsError` (`not_found` for a missing source). */
export async function moveEntry(sandbox: LocalSandbox, source: string, destination: string, signal?: AbortSignal): Promise<EnvdEntry> {
  await runScript(sandbox, 'move', [source, destination], signal).catch((error: unknown) => {
    if (error instanceof EnvdFsError && error.fault === 'not_found') {
      throw new EnvdFsError('not_found', `source file not found: rename ${source} ${destination}: no such file or directory`);
    }
    throw error;
  });
  return statEntry(sandbox, destination, signal);
}

/** envd's Remove (the whole tree; a missing path is fine). Throws `EnvdFsError`. */
export async function removeEntry(sandbox: LocalSandbox, path: string, signal?: AbortSignal): Promise<void> {
  await runScript(sandbox, 'remove', [path], signal);
}

/** Gives `path` (not what it links to) to `uid:gid`. Throws `EnvdFsError`. */
export async function changeOwner(sandbox: LocalSandbox, path: string, uid: number, gid: number, signal?: AbortSignal): Promise<void> {
  await runScript(sandbox, 'chown', [path, `${uid}:${gid}`], signal);
}

/** Go's `WalkDir` order: at each level names in byte order, a directory before what it holds. */
export function compareWalkOrder(a: string, b: string): number {
  const left = a.split('/');
  const right = b.split('/');
  for (let index = 0; index < Math.min(left.length, right.length); index++) {
    const order = Buffer.compare(Buffer.from(left[index]!), Buffer.from(right[index]!));
    if (order !== 0) return order;
  }
  return left.length - right.length;
}

const goTypeLetters: Record<string, string> = { d: 'd', l: 'L', p: 'p', s: 'S', b: 'D', c: 'Dc' };
const entryTypes: Record<string, EnvdEntry['type']> = { f: 'file', d: 'directory' };

/**
 * Go's `FileMode.String()`: the type letters (`d`, `L`, `D`, `p`, `S`, `c`), then `u`, `g`, `t`
 * for setuid, setgid and sticky (in Go's order), `-` when there is none, then `rwxrwxrwx`.
 */
export function goModeString(findType: string, permissionBits: number): string {
  let letters = '';
  const type = goTypeLetters[findType] ?? '';
  // Go's letter order is d a l T L D p S u g c t ?: the char-device `c` comes after u and g.
  if (type === 'Dc') {
    letters = `D${permissionBits & 0o4000 ? 'u' : ''}${permissionBits & 0o2000 ? 'g' : ''}c`;
  } else {
    letters = `${type}${permissionBits & 0o4000 ? 'u' : ''}${permissionBits & 0o2000 ? 'g' : ''}`;
  }
  if (permissionBits & 0o1000) letters += 't';
  const rwx = [6, 3, 0]
    .map((shift) => ['r', 'w', 'x'].map((flag, index) => ((permissionBits >> shift) & (4 >> index) ? flag : '-')).join(''))
    .join('');
  return `${letters || '-'}${rwx}`;
}

/** `1700000000.1234567890` (find's `%T@`) as RFC 3339 with nanoseconds, without float rounding. */
export function timestampJson(findSeconds: string): string | undefined {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(findSeconds);
  if (!match) return undefined;
  const seconds = Number(match[1]);
  if (seconds === 0 && !/[1-9]/.test(match[2] ?? '')) return undefined;
  const nanos = (match[2] ?? '').padEnd(9, '0').slice(0, 9);
  const date = new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, '');
  // protobuf's JSON uses 0, 3, 6 or 9 fractional digits.
  const fraction =
    nanos === '000000000' ? '' : nanos.endsWith('000000') ? nanos.slice(0, 3) : nanos.endsWith('000') ? nanos.slice(0, 6) : nanos;
  return `${date}${fraction ? `.${fraction}` : ''}Z`;
}

/** Entry records (tag `E`) and symlink details (tag `S`), NUL-separated (see `entryFormat`, `symlinkDetails`). */
function parseOutput(output: Uint8Array, pathOf: (relative: string) => string): EnvdEntry[] {
  const fields = new TextDecoder().decode(output).split('\0');
  const records: string[][] = [];
  const details = new Map<string, { target: string; bits: string }>();
  for (let index = 0; index < fields.length; ) {
    const tag = fields[index];
    if (tag === 'E' && index + 1 + fieldsPerEntry <= fields.length) {
      records.push(fields.slice(index + 1, index + 1 + fieldsPerEntry));
      index += 1 + fieldsPerEntry;
    } else if (tag === 'S' && index + 4 <= fields.length) {
      details.set(fields[index + 1]!, { target: fields[index + 2]!, bits: fields[index + 3]! });
      index += 4;
    } else {
      break;
    }
  }
  return records.map((record) => {
    const [own, final, size, bits, modified, owner, group, relative] = record as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const ownBits = Number.parseInt(bits, 8);
    const path = pathOf(relative);
    const entry: EnvdEntry = {
      name: posix.basename(path),
      type: entryTypes[own],
      path,
      size: Number(size),
      mode: ownBits & 0o777,
      permissions: goModeString(own, ownBits),
      owner,
      group,
      modifiedTime: timestampJson(modified),
    };
    if (own === 'l') {
      const detail = details.get(relative);
      entry.symlinkTarget = detail?.target ?? path;
      const targetBits = detail?.bits ? Number.parseInt(detail.bits, 8) : Number.NaN;
      entry.type = entryTypes[final];
      entry.mode = Number.isNaN(targetBits) ? 0 : targetBits & 0o777;
    }
    return entry;
  });
}
